import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';

// A deterministic text dump of a database's schema, one fact per line, so that a
// committed copy shows every schema change in review (test/schema.test.ts). It reads
// the database through its own driver, not through src/db, so it describes what the
// migrations built and nothing else.

/** Splits `a, b (c, d), e` at the commas outside parentheses and quotes. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"' || ch === '`') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts;
}

const oneLine = (sqlText: string) => sqlText.replace(/\s+/g, ' ').replace(/\( /g, '(').replace(/ \)/g, ')').trim();

function dumpSqlite(path: string): string {
  const database = new BetterSqlite3(path, { readonly: true });
  try {
    const rows = database
      .prepare("select type, name, tbl_name as tbl, sql from sqlite_master where name not like 'sqlite_%' and sql is not null")
      .all() as { type: string; name: string; tbl: string; sql: string }[];
    const lines: string[] = [];
    const tables = rows.filter((r) => r.type === 'table').sort((a, b) => a.name.localeCompare(b.name));
    for (const table of tables) {
      const text = oneLine(table.sql);
      const open = text.indexOf('(');
      lines.push(`${text.slice(0, open).trim()} (`);
      for (const part of splitTopLevel(text.slice(open + 1, text.lastIndexOf(')')))) lines.push(`  ${part}`);
      lines.push(`)${text.slice(text.lastIndexOf(')') + 1)}`);
      const others = rows.filter((r) => r.type !== 'table' && r.tbl === table.name).sort((a, b) => a.name.localeCompare(b.name));
      for (const other of others) lines.push(oneLine(other.sql));
      lines.push('');
    }
    // Views, and anything else not attached to a table, last.
    const loose = rows.filter((r) => r.type !== 'table' && !tables.some((t) => t.name === r.tbl));
    for (const other of loose.sort((a, b) => a.name.localeCompare(b.name))) lines.push(oneLine(other.sql), '');
    return lines.join('\n');
  } finally {
    database.close();
  }
}

async function dumpPostgres(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const columns = await client.query<{ table_name: string; column_name: string; type: string; is_nullable: string; column_default: string | null }>(`
      select table_name, column_name,
             case when character_maximum_length is not null then data_type || '(' || character_maximum_length || ')' else data_type end as type,
             is_nullable, column_default
        from information_schema.columns
       where table_schema = current_schema()
       order by table_name, ordinal_position`);
    const constraints = await client.query<{ table_name: string; name: string; def: string }>(`
      select rel.relname as table_name, con.conname as name, pg_get_constraintdef(con.oid) as def
        from pg_constraint con
        join pg_class rel on rel.oid = con.conrelid
       where rel.relnamespace = current_schema()::regnamespace
       order by rel.relname, con.conname`);
    const indexes = await client.query<{ tablename: string; indexname: string; indexdef: string }>(`
      select tablename, indexname, indexdef from pg_indexes
       where schemaname = current_schema()
       order by tablename, indexname`);
    const triggers = await client.query<{ table_name: string; def: string }>(`
      select rel.relname as table_name, pg_get_triggerdef(tg.oid) as def
        from pg_trigger tg
        join pg_class rel on rel.oid = tg.tgrelid
       where rel.relnamespace = current_schema()::regnamespace and not tg.tgisinternal
       order by rel.relname, tg.tgname`);
    const functions = await client.query<{ def: string }>(`
      select pg_get_functiondef(p.oid) as def from pg_proc p
       where p.pronamespace = current_schema()::regnamespace
       order by p.proname, pg_get_function_identity_arguments(p.oid)`);
    const tables = [...new Set(columns.rows.map((c) => c.table_name))].sort();
    const lines: string[] = [];
    for (const table of tables) {
      lines.push(`table ${table}`);
      for (const c of columns.rows.filter((r) => r.table_name === table)) {
        const nullable = c.is_nullable === 'NO' ? ' not null' : '';
        const fallback = c.column_default === null ? '' : ` default ${c.column_default}`;
        lines.push(`  column ${c.column_name} ${c.type}${nullable}${fallback}`);
      }
      for (const c of constraints.rows.filter((r) => r.table_name === table)) lines.push(`  constraint ${c.name} ${c.def}`);
      for (const i of indexes.rows.filter((r) => r.tablename === table)) {
        // Without the schema name (`ON public.t`), which says where the test ran, not what it built.
        lines.push(`  ${i.indexdef.replace(/ ON \w+\./, ' ON ')}`);
      }
      for (const tg of triggers.rows.filter((r) => r.table_name === table)) lines.push(`  ${tg.def.replace(/ ON \w+\./, ' ON ')}`);
      lines.push('');
    }
    for (const f of functions.rows) lines.push(f.def.trim().replace(/\s+$/gm, ''), '');
    return lines.join('\n');
  } finally {
    await client.end();
  }
}

/** The schema of the database at `url` (`sqlite:PATH` or `postgres://…`). */
export async function dumpSchema(url: string): Promise<string> {
  return url.startsWith('sqlite:') ? dumpSqlite(url.slice('sqlite:'.length)) : dumpPostgres(url);
}
