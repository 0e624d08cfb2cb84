// Signing in without a browser: with an LDAP name and password, with a local account's
// e-mail and password, or by accepting an invitation with a new password; and which ways
// of signing in this server offers, so the CLI can choose. Each answers a session token.
import { type Static, Type } from '@sinclair/typebox';

const Password = (description: string) => Type.String({ maxLength: 1024, description });

export const AuthProviders = Type.Object({
  oidc: Type.Boolean({ description: "single sign-on: 'petri login' (browser) or 'petri login --device'" }),
  ldap: Type.Boolean({ description: "an LDAP directory: 'petri login --ldap USER'" }),
  password: Type.Boolean({ description: "local accounts with a password: 'petri login --email EMAIL'" }),
});
export type AuthProviders = Static<typeof AuthProviders>;

export const LdapSignInBody = Type.Object(
  {
    username: Type.String({
      maxLength: 256,
      description: 'the LDAP user name (what the user filter matches)',
    }),
    password: Password('the LDAP password; an empty one is refused before the directory is asked'),
  },
  { additionalProperties: false },
);
export type LdapSignInBody = Static<typeof LdapSignInBody>;

export const PasswordSignInBody = Type.Object(
  {
    email: Type.String({ maxLength: 254, description: "the local account's e-mail" }),
    password: Password("the account's password"),
  },
  { additionalProperties: false },
);
export type PasswordSignInBody = Static<typeof PasswordSignInBody>;

export const InvitationAcceptBody = Type.Object(
  {
    invitation: Type.String({
      maxLength: 512,
      description: 'the secret of the invitation link (the part after /invite/), or the whole link',
    }),
    password: Password('the new local account’s password: at least 10 characters'),
  },
  { additionalProperties: false },
);
export type InvitationAcceptBody = Static<typeof InvitationAcceptBody>;

export const PasswordChangeBody = Type.Object(
  {
    current: Password('the password now'),
    new: Password('the new password: at least 10 characters'),
  },
  { additionalProperties: false },
);
export type PasswordChangeBody = Static<typeof PasswordChangeBody>;

export const PasswordChanged = Type.Object({
  sessionsEnded: Type.Integer({ description: "the account's other sign-in sessions, ended by the change" }),
});
export type PasswordChanged = Static<typeof PasswordChanged>;
