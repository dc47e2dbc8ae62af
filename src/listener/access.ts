/**
 * The one access check of the listener: whether a request may subscribe, publish or read the
 * operator routes, by the publish secret and then the `authorize` hook (the JWT rule is one).
 */
import type { Answer, Answers } from './answers.js';
import type { AccessDecision, AccessKind, Authorize } from './auth.js';

/** What an access check says: go on (perhaps until an expiry, in ms), or this answer. */
export type Access = undefined | number | Answer;

/** The request fields an access check reads. */
export interface AccessHead {
  readonly target: string;
  readonly authorization: string | undefined;
  readonly cookie: string | undefined;
}

/** The access rule of one listener. */
export class AccessCheck {
  constructor(
    private readonly answers: Answers,
    private readonly authorize: Authorize | undefined,
  ) {}

  /**
   * Whether a request may do `kind`: the publish secret lets a POST and `/stats` through; then the
   * `authorize` hook (or the JWT rule) decides; with neither, a secret alone guards POST and
   * `/stats`, and without a secret everything is open.
   */
  check(
    kind: AccessKind,
    token: string | undefined,
    action: string | undefined,
    head: AccessHead,
  ): Access | Promise<Access> {
    const answers = this.answers;
    const authorize = this.authorize;
    if (kind !== 'subscribe' && answers.hasPublishSecret(head.authorization)) return undefined;
    if (authorize === undefined) {
      return kind !== 'subscribe' && answers.hasSecret ? answers.unauthorized : undefined;
    }
    let decision: AccessDecision | Promise<AccessDecision>;
    try {
      decision = authorize({
        kind,
        token,
        action,
        url: head.target,
        headers: { authorization: head.authorization, cookie: head.cookie },
      });
    } catch (error) {
      return this.answers.error('authorize', error);
    }
    if (decision instanceof Promise) {
      return decision.then(
        (found) => this.toAccess(found),
        (error: unknown) => this.answers.error('authorize', error),
      );
    }
    return this.toAccess(decision);
  }

  private toAccess(decision: AccessDecision): Access {
    if (decision === true) return undefined;
    if (decision === false) return this.answers.forbidden;
    if ('expiresAt' in decision) return decision.expiresAt;
    return { status: decision.status, body: decision.message, headers: decision.headers };
  }
}
