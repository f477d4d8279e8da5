import { Type } from '@sinclair/typebox';

// The query parameters of every list (the rule itself is db/paginate.ts).

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: '1–100, default 20' })),
  after: Type.Optional(
    Type.String({ pattern: '^[0-9a-f]{24}$', description: 'id of the last item of the previous page' }),
  ),
};
