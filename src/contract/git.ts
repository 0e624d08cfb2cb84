// Git smart HTTP over an app's repository: which service a request is for.
import { type Static, Type } from '@sinclair/typebox';

export const GitInfoRefsQuery = Type.Object({
  service: Type.Optional(Type.String({ description: 'git-receive-pack or git-upload-pack' })),
});
export type GitInfoRefsQuery = Static<typeof GitInfoRefsQuery>;
