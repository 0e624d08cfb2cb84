// The shapes the Petri API answers with, as the CLI and the dashboard see them: the API
// contract's own types (src/contract), so client and server cannot drift apart. Only
// what the client itself decides lives here.
import type { DeployStatus, ReleaseStatus } from '../contract/index.js';

export type {
  Addon,
  AddonBackup,
  AddonBackupKind,
  AddonBackupStatus,
  AddonChange,
  AddonDestroyed,
  AddonDetail,
  AddonList,
  AddonRestore,
  AddonStatus,
  AddonUsage,
  App,
  AppEgress,
  AppProcess,
  AppSettings,
  AppStatus,
  AppUpdate,
  ChangeUserBody,
  ConfigChange,
  ConfigVars,
  CreateBotBody,
  CreatedBot,
  CreatedInvitation,
  CreatedToken,
  CreateInvitationBody,
  CreateTokenBody,
  Deploy,
  DeployEndEvent,
  DeployEvent,
  DeployLogEvent,
  DeployStatus,
  DisabledUser,
  EgressAttempt,
  Formation,
  InvitationInfo,
  Limits,
  LogLine,
  Process,
  ProcessList,
  ProcessState,
  Release,
  ReleaseKind,
  ReleaseStatus,
  TokenInfo,
  TokenList,
  User,
  UserInfo,
  Whoami,
  WhoamiTeam,
  WhoamiUser,
} from '../contract/index.js';
export type {
  DevicePoll,
  DevicePollBody,
  DeviceStart,
  DeviceStartBody,
  OidcFinishBody,
  OidcStart,
  OidcStartBody,
  SignedIn,
} from '../contract/index.js';

/** Statuses after which a release or a deploy no longer changes: waiting for them ends. */
export const TERMINAL_RELEASE_STATUSES: readonly ReleaseStatus[] = ['succeeded', 'failed'];

export const TERMINAL_DEPLOY_STATUSES: readonly DeployStatus[] = ['succeeded', 'failed'];
