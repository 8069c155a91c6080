/**
 * Errors a user can hit. Each carries a stable `code` from ERROR_CODES, a message that says what
 * went wrong, and a `hint` that says what to do about it. The CLI prints all three; the API answers
 * with the code's HTTP status (`statusOf`). An internal bug is not a KilnError: throw `bug(…)`
 * (a plain Error), which the CLI prints with "this is a bug" and its stack, the API as a logged 500.
 */

/**
 * Every code, with its HTTP status: 4xx for what the caller can fix, 5xx for what the server (or the
 * machine it runs on) must. A new code is one line here, in alphabetical order.
 */
export const ERROR_CODES = {
  ambiguous_build: 500,
  app_not_found: 500,
  apt_bad_metadata: 500,
  apt_package_unknown: 500,
  bootstrap_failed: 500,
  bootstrap_stalled: 500,
  build_cgroup: 500,
  build_download_blocked: 500,
  build_failed: 500,
  build_quota_exceeded: 429,
  build_timeout: 500,
  check_failed: 500,
  checks_disabled: 501,
  conflict: 409,
  deb_download_failed: 500,
  deb_hash_mismatch: 500,
  deb_version_gone: 500,
  dyno_start_failed: 500,
  dynos_disabled: 501,
  fetch_hash_mismatch: 422,
  forbidden: 403,
  host_unavailable: 500,
  images_disabled: 501,
  internal: 500,
  interrupted: 500,
  invalid_against: 422,
  invalid_app: 422,
  invalid_app_name: 422,
  invalid_body: 422,
  invalid_branch: 422,
  invalid_builders: 422,
  invalid_buildpack: 422,
  invalid_collaborator: 422,
  invalid_config: 422,
  invalid_config_key: 422,
  invalid_config_var: 422,
  invalid_dyno_size: 422,
  invalid_env: 422,
  invalid_fetch: 422,
  invalid_form: 422,
  invalid_key: 422,
  invalid_platform: 422,
  invalid_process_type: 422,
  invalid_procfile: 422,
  invalid_provenance: 422,
  invalid_quantity: 422,
  invalid_request: 422,
  invalid_service: 422,
  invalid_slug: 422,
  invalid_slug_output: 422,
  invalid_slug_ref: 422,
  invalid_source: 422,
  invalid_state: 422,
  invalid_substituter: 422,
  invalid_token: 422,
  invalid_user_name: 422,
  invalid_variation: 422,
  invalid_workspace: 422,
  inventory_foreign_tarball: 500,
  inventory_invalid: 500,
  inventory_lts_unreadable: 502,
  inventory_missing: 500,
  iojs_unsupported: 422,
  lockfile_missing: 500,
  lockfile_out_of_sync: 500,
  lockfile_too_old: 500,
  lockfile_unsupported: 422,
  multiple_lockfiles: 422,
  needs_root: 500,
  nix_build_failed: 500,
  nix_daemon_failed: 500,
  nix_failed: 500,
  nix_interrupted: 500,
  nix_not_found: 500,
  no_buildpack: 500,
  node_version_invalid: 422,
  node_version_unavailable: 500,
  not_a_git_checkout: 422,
  not_deterministic: 500,
  npm_download_failed: 500,
  npm_integrity_mismatch: 500,
  npm_no_version: 500,
  npm_registry_unknown: 500,
  npm_view_failed: 500,
  outbound_failed: 500,
  package_manager_conflict: 422,
  package_manager_hash_mismatch: 422,
  package_manager_incompatible: 422,
  package_manager_invalid: 422,
  package_manager_unavailable: 422,
  package_manager_unsupported: 422,
  path_unreachable: 500,
  payload_too_large: 413,
  platform_handoff_failed: 502,
  port_in_use: 500,
  port_not_allowed: 500,
  process_failed: 500,
  push_rejected: 422,
  queue_full: 429,
  quota_exceeded: 422,
  registry_lookup_failed: 502,
  relay_failed: 500,
  seccomp_unavailable: 500,
  seed_corrupt: 500,
  seed_file_invalid: 500,
  seed_file_mismatch: 500,
  seed_file_missing: 500,
  seed_file_unreadable: 500,
  seed_hash_mismatch: 500,
  seed_missing: 500,
  seed_path_mismatch: 500,
  server_unreachable: 500,
  slug_corrupt: 500,
  slug_missing: 500,
  slug_tampered: 500,
  slug_unsafe: 500,
  source_checksum_mismatch: 422,
  source_invalid_archive: 422,
  source_special_file: 422,
  source_unreachable: 422,
  source_unsafe_entry: 422,
  source_unsafe_link: 422,
  source_url_refused: 422,
  store_too_new: 500,
  store_unavailable: 500,
  tools_incomplete: 500,
  uids_exhausted: 500,
  unauthorized: 401,
  unexpected_response: 502,
  unknown_app: 404,
  unknown_asset: 404,
  unknown_build: 404,
  unknown_buildpack: 404,
  unknown_check: 404,
  unknown_collaborator: 404,
  unknown_dyno: 404,
  unknown_process_type: 404,
  unknown_provenance: 404,
  unknown_release: 404,
  unknown_slug: 404,
  unknown_stack: 404,
  unknown_token: 404,
  unknown_user: 404,
  unsafe_buildpack: 500,
  unsupported_dependencies: 500,
  unsupported_media_type: 415,
  usage: 422,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** The HTTP status the API answers a code with; a code it does not know (another kiln's) is a 500. */
export function statusOf(code: string): number {
  return isErrorCode(code) ? ERROR_CODES[code] : 500;
}

export class KilnError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(opts: {
    code: ErrorCode;
    message: string;
    hint?: string;
    details?: Record<string, unknown>;
    cause?: unknown;
  }) {
    super(opts.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "KilnError";
    this.code = opts.code;
    this.hint = opts.hint;
    this.details = opts.details;
  }
}

export function isKilnError(err: unknown): err is KilnError {
  return err instanceof KilnError;
}

/**
 * An error another kiln answered with (the API's error body), its code passed on as it came: the
 * server may be a newer kiln with codes this one does not list.
 */
export function relayedError(opts: { code: string; message: string; hint?: string }): KilnError {
  return new KilnError({ ...opts, code: opts.code as ErrorCode });
}

/** An internal error: something kiln itself got wrong, never the user's input or the machine. */
export function bug(message: string): never {
  throw new Error(message);
}
