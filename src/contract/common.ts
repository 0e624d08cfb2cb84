// What every route shares: the error body, the error responses each route documents, path
// parameters, and the helpers the other contract files build their schemas with.
import { type SchemaOptions, type Static, type TSchema, type TUnsafe, Type } from '@sinclair/typebox';
import { ERROR_CODES, type ErrorCode } from '../lib/errors.js';

/** A string from a fixed list, as OpenAPI tools expect it ({type: string, enum}): one
 * schema for validation, the document and serialization (a plain string to Fastify's
 * serializer, rather than an anyOf it must try branch by branch). */
export function StringEnum<const T extends string[]>(values: T, options?: SchemaOptions): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: values });
}

export function Nullable<T extends TSchema>(schema: T, options?: SchemaOptions) {
  return Type.Union([schema, Type.Null()], options);
}

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: StringEnum(Object.keys(ERROR_CODES) as ErrorCode[]),
      message: Type.String({ description: 'meant for the user as is: it says what to do next' }),
    }),
  },
  { $id: 'Error' },
);
export type ErrorBody = Static<typeof ErrorBody>;

/** Every route answers its errors with ErrorBody: the usual ones by status, any other 4xx
 * (403, 409, 413, 415, 429 ...) and 5xx too. */
export const errorResponses = {
  400: ErrorBody,
  401: ErrorBody,
  404: ErrorBody,
  '4xx': ErrorBody,
  '5xx': ErrorBody,
};

export const AppNameParams = Type.Object({ name: Type.String({ description: 'app name' }) });
export type AppNameParams = Static<typeof AppNameParams>;

export const User = Type.Object({ name: Type.String(), role: StringEnum(['admin', 'auditor', 'member']) });
export type User = Static<typeof User>;

/** 204 No Content. */
export const NoContent = Type.Null();

/** A 200 answered as NDJSON, one JSON value per line, each matching `line`: OpenAPI has no
 * stream type, so the document gives the schema of one line. */
export function Ndjson<T extends TSchema>(line: T, description: string) {
  return { description, content: { 'application/x-ndjson': { schema: line } } };
}

/** A 200 answered with bytes (a dump, git's protocol) of one of the media types. */
export function Binary(description: string, ...mediaTypes: string[]) {
  const schema = Type.String({ format: 'binary' });
  return { description, content: Object.fromEntries(mediaTypes.map((type) => [type, { schema }])) };
}
