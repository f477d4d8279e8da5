// Where a field named by the API lives in the JSON text the user typed. The API names
// a field as `steps[2].retry.max_attempts`; this walks the text (a small JSON scanner
// that records where each key or array item starts) and answers the line of the
// deepest part of that path present in the text, so the error can stand beside it.

type Path = (string | number)[];

export function parseFieldPath(message: string): { path: Path; text: string } | null {
  const match = /^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]*)*):\s/.exec(message);
  if (!match) return null;
  const path: Path = [];
  for (const part of match[1]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]/g)) path.push(part[2] !== undefined ? Number(part[2]) : part[1]!);
  return { path, text: match[1]! };
}

/** Offsets of every path in `text` (joined with '/'), or null when the text is not JSON. */
function offsets(text: string): Map<string, number> | null {
  const found = new Map<string, number>();
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const string = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        const at = i;
        const key = string();
        found.set(`${path}/${key}`, at);
        ws();
        if (text[i++] !== ':') throw new Error('expected :');
        value(`${path}/${key}`);
        ws();
        if (text[i] === ',') i++;
        else if (text[i++] === '}') return;
        else throw new Error('expected , or }');
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (let n = 0; ; n++) {
        ws();
        found.set(`${path}/${n}`, i);
        value(`${path}/${n}`);
        ws();
        if (text[i] === ',') i++;
        else if (text[i++] === ']') return;
        else throw new Error('expected , or ]');
      }
    }
    if (c === '"') return void string();
    const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (!m) throw new Error('unexpected token');
    i += m[0].length;
  };
  try {
    value('');
    return found;
  } catch {
    return null;
  }
}

/** The 1-based line of the deepest part of `path` found in `text`, and the offset it starts at. */
export function locateField(text: string, path: Path): { line: number; offset: number } | null {
  const map = offsets(text);
  if (!map) return null;
  for (let depth = path.length; depth > 0; depth--) {
    const offset = map.get(`/${path.slice(0, depth).join('/')}`);
    if (offset !== undefined) return { line: text.slice(0, offset).split('\n').length, offset };
  }
  return null;
}
