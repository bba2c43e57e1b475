// Bearer-token authentication with jose. The caller is the token's `email`
// claim; `exp` is required, and `iat` too when a maximum token age is set.
// Only the algorithms of JWT_ALGORITHMS are accepted. Admins are listed in
// ADMIN_EMAILS.
import {
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  SignJWT,
  type JWTPayload,
  type JWTVerifyGetKey,
} from "jose";

import type { JwtConfig } from "../config";
import { quote, UnauthenticatedError } from "../errors";

export interface Viewer {
  email: string;
  isAdmin: boolean;
  /** Expiry of the token, in seconds since the epoch. */
  expiresAt: number;
}

export type VerifyBearer = (authorization: string | undefined) => Promise<Viewer>;

// Loose enough for the addresses identity providers issue, strict enough
// to reject values that are clearly not an address.
const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

// Characters a reader cannot see, with which an address looks exactly like
// someone else's. Cc covers the C0 and C1 controls and U+0000, which
// PostgreSQL text cannot store. Cf covers format characters such as
// zero-width spaces, bidi overrides and U+FEFF. The rest are other
// default-ignorable code points (variation selectors, Hangul fillers), lone
// surrogates, private-use and unassigned code points.
// Separators (Z: spaces such as U+00A0 and U+3000, line and paragraph
// separators) and letters drawn as blanks (U+2800 BRAILLE PATTERN BLANK, the
// Hangul fillers U+115F, U+1160, U+3164 and U+FFA0) look empty as well.
const INVISIBLE_CHARACTER =
  /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}\p{Z}\u2800\u115F\u1160\u3164\uFFA0]/u;

/** Maximum length of an e-mail address (RFC 5321 path limit). */
export const MAX_EMAIL_LENGTH = 254;

/**
 * Returns the one spelling of an address that the gateway stores and
 * compares: Unicode NFC and lower case. So "é" typed as one code point or
 * as "e" and a combining accent is one user.
 */
export function canonicalEmail(value: string): string {
  return value.normalize("NFC").toLowerCase();
}

export function isEmail(value: string): boolean {
  return (
    value.length <= MAX_EMAIL_LENGTH &&
    EMAIL_PATTERN.test(value) &&
    describeInvisibleCharacter(value) === null
  );
}

/** Labels of an ASCII domain name: letters, digits and inner hyphens. */
const DOMAIN_PATTERN = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]+$/i;

/**
 * Describes why an address of the right shape still reads like another
 * one, for error messages, or returns null when nothing does: an
 * invisible, blank or control character, a compatibility character such
 * as a fullwidth letter, or a domain that is not plain ASCII (a Cyrillic
 * "а" in it looks like a Latin "a") or has an empty label.
 * NOTE: look-alike letters of other scripts in the local part are not
 * detected.
 */
export function describeInvisibleCharacter(value: string): string | null {
  const match = INVISIBLE_CHARACTER.exec(value);
  if (match) {
    return (
      `it contains ${codePoint(match[0])}, an invisible, blank or ` +
      `control character; type the address without it`
    );
  }
  const compatible = [...value].find((c) => c.normalize("NFKC") !== c.normalize("NFC"));
  if (compatible) {
    return (
      `it contains ${codePoint(compatible)}, a compatibility form of ` +
      `"${compatible.normalize("NFKC")}"; type the plain character`
    );
  }
  const domain = value.slice(value.lastIndexOf("@") + 1);
  if (!DOMAIN_PATTERN.test(domain)) {
    return (
      `its domain ${JSON.stringify(domain.slice(0, 80))} is not a plain ASCII ` +
      `host name; remove empty labels and trailing dots, and write an ` +
      `internationalized domain in its punycode form (xn--...)`
    );
  }
  return null;
}

function codePoint(character: string): string {
  const code = character.codePointAt(0)!.toString(16).toUpperCase();
  return `U+${code.padStart(4, "0")}`;
}

/** Builds the verifier for `Authorization: Bearer <jwt>` values. */
export function createVerifier(
  jwt: JwtConfig,
  adminEmails: readonly string[],
): VerifyBearer {
  const admins = new Set(adminEmails.map(canonicalEmail));
  const key = resolveKey(jwt);
  const options: Parameters<typeof jwtVerify>[2] = {
    algorithms: jwt.algorithms,
    issuer: jwt.issuer,
    audience: jwt.audience,
    clockTolerance: jwt.clockToleranceSeconds,
    maxTokenAge: jwt.maxTokenAgeSeconds,
    requiredClaims: jwt.maxTokenAgeSeconds ? ["exp", "iat"] : ["exp"],
  };

  return async (authorization) => {
    const token = parseBearer(authorization);
    const payload = await verify(token, key, options);
    checkIssuedAt(payload, jwt.clockToleranceSeconds);
    const email = readEmail(payload);
    return {
      email,
      isAdmin: admins.has(email),
      expiresAt: payload.exp as number,
    };
  };
}

function resolveKey(jwt: JwtConfig): Uint8Array | JWTVerifyGetKey {
  if (jwt.secret) return new TextEncoder().encode(jwt.secret);
  if (jwt.jwksUrl) {
    // jose caches the key set for cacheMaxAge. When a token names a key id
    // the cached set lacks, jose fetches the set again (at most once per
    // cooldown), so a key rotated in by the issuer works without a restart.
    return createRemoteJWKSet(new URL(jwt.jwksUrl), {
      cacheMaxAge: jwt.jwksCacheMaxAgeMs,
      cooldownDuration: jwt.jwksCooldownMs,
    });
  }
  throw new Error("JwtConfig needs a secret or a JWKS URL");
}

function parseBearer(authorization: string | undefined): string {
  if (!authorization) {
    throw new UnauthenticatedError(
      "Missing token: send `Authorization: Bearer <jwt>` (over graphql-ws, " +
        'put {"authorization": "Bearer <jwt>"} in the connection_init ' +
        "payload). `npm run token -- --email you@example.com` prints one " +
        "for local use.",
    );
  }
  const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
  if (!match) {
    throw new UnauthenticatedError(
      'Malformed Authorization value: expected "Bearer <jwt>".',
    );
  }
  return match[1];
}

async function verify(
  token: string,
  key: Uint8Array | JWTVerifyGetKey,
  options: Parameters<typeof jwtVerify>[2],
): Promise<JWTPayload> {
  try {
    const { payload } =
      key instanceof Uint8Array
        ? await jwtVerify(token, key, options)
        : await jwtVerify(token, key, options);
    return payload;
  } catch (error) {
    throw new UnauthenticatedError(describeJoseError(error));
  }
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) {
    if (error.claim === "iat") {
      return (
        "Token is older than the maximum token age " +
        "(JWT_MAX_TOKEN_AGE_SECONDS): get a new one and retry."
      );
    }
    return "Token expired: get a new one and retry.";
  }
  if (
    error instanceof joseErrors.JWTClaimValidationFailed &&
    error.claim === "nbf"
  ) {
    return "Token is not valid yet (its nbf claim is in the future).";
  }
  if (
    error instanceof joseErrors.JWTClaimValidationFailed &&
    error.claim === "iat" &&
    error.reason === "check_failed"
  ) {
    return FUTURE_IAT_MESSAGE;
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
    return "Token signature is invalid: the token was not signed with this gateway's key.";
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return `Token claim "${error.claim}" is invalid (${error.reason}): ${error.message}.`;
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return `Token algorithm is not accepted (JWT_ALGORITHMS): ${error.message}.`;
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) {
    return "Token key id is unknown: no key of the JWKS matches the token's kid and alg.";
  }
  return `Token is invalid: ${(error as Error).message}.`;
}

const FUTURE_IAT_MESSAGE =
  'Token claim "iat" is in the future: the token says it was issued later ' +
  "than now plus JWT_CLOCK_TOLERANCE_SECONDS. Check the issuer's clock and " +
  "get a new token.";

/**
 * Rejects an `iat` later than now plus the clock tolerance. jose checks
 * this only when a maximum token age is set.
 */
function checkIssuedAt(payload: JWTPayload, toleranceSeconds: number): void {
  const nowSeconds = Math.floor(Date.now() / 1000);
  if (typeof payload.iat === "number" && payload.iat > nowSeconds + toleranceSeconds) {
    throw new UnauthenticatedError(FUTURE_IAT_MESSAGE, { iat: payload.iat });
  }
}

function readEmail(payload: JWTPayload): string {
  const email = payload.email;
  if (typeof email !== "string" || !isEmail(email)) {
    const invisible =
      typeof email === "string" ? describeInvisibleCharacter(email) : null;
    throw new UnauthenticatedError(
      `Token claim "email" is invalid: got ${describeClaim(email)}` +
        `${invisible ? ` (${invisible})` : ""}, expected an e-mail ` +
        `address of at most ${MAX_EMAIL_LENGTH} characters without spaces ` +
        "or invisible characters, because the gateway identifies callers " +
        "by e-mail address. Get a token for a valid address.",
      {},
      briefEmailProblem(email),
    );
  }
  return canonicalEmail(email);
}

/** Describes an invalid `email` claim and its fix, short enough for a close reason. */
function briefEmailProblem(email: unknown): string {
  const invisible =
    typeof email === "string" ? INVISIBLE_CHARACTER.exec(email) : null;
  const code = invisible?.[0].codePointAt(0)!.toString(16).toUpperCase();
  const fact = code
    ? `it contains U+${code.padStart(4, "0")}, an invisible character`
    : "it is not an e-mail address";
  return `Token claim "email" is invalid: ${fact}. Get a token for a valid address.`;
}

/** Shows a claim value in a message, control characters escaped. */
function describeClaim(value: unknown): string {
  if (typeof value === "string") return quote(value);
  if (value === undefined) return "no value";
  return quote(JSON.stringify(value) ?? String(value), 40);
}

/** Signs an HS256 token, for local use and tests. */
export async function signToken(
  secret: string,
  claims: { email: string; [claim: string]: unknown },
  options: { expiresIn?: string | number; issuer?: string; audience?: string } = {},
): Promise<string> {
  let builder = new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "12h");
  if (options.issuer) builder = builder.setIssuer(options.issuer);
  if (options.audience) builder = builder.setAudience(options.audience);
  return builder.sign(new TextEncoder().encode(secret));
}
