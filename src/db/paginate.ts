import type { SelectQueryBuilder } from 'kysely';

// The one pagination rule of every list: newest first by id, `after` = the id of the
// last item of the previous page. Ids made later sort higher, so a new item lands
// before the cursor and a walk neither skips nor repeats anything.

export interface PageParams {
  limit?: number;
  after?: string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function paginate<QB extends SelectQueryBuilder<any, any, any>>(query: QB, idColumn: string, page: PageParams): QB {
  let q = query;
  if (page.after !== undefined) q = q.where(idColumn, '<', page.after) as QB;
  return q.orderBy(idColumn, 'desc').limit(page.limit ?? 20) as QB;
}

/** One page and whether another follows (`has_more`): asks for one row more than the
 * page holds, so the answer costs no second query. */
export async function pageWithMore<T>(page: PageParams, fetch: (page: PageParams) => Promise<T[]>): Promise<{ items: T[]; hasMore: boolean }> {
  const limit = page.limit ?? 20;
  const rows = await fetch({ ...page, limit: limit + 1 });
  return { items: rows.slice(0, limit), hasMore: rows.length > limit };
}
