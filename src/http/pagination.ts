import { type Static, Type } from '@sinclair/typebox';
import type { SelectQueryBuilder } from 'kysely';

// The one pagination rule of every list: newest first by id, `after` = the id of the
// last item of the previous page. Ids made later sort higher, so a new item lands
// before the cursor and a walk neither skips nor repeats anything.

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: '1–100, default 20' })),
  after: Type.Optional(
    Type.String({ pattern: '^[0-9a-f]{24}$', description: 'id of the last item of the previous page' }),
  ),
};

export type PageParams = Static<ReturnType<typeof Type.Object<typeof PageQuery>>>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function paginate<QB extends SelectQueryBuilder<any, any, any>>(query: QB, idColumn: string, page: PageParams): QB {
  let q = query;
  if (page.after !== undefined) q = q.where(idColumn, '<', page.after) as QB;
  return q.orderBy(idColumn, 'desc').limit(page.limit ?? 20) as QB;
}
