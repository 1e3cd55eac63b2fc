import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashing. etcd replicates a bcrypt hash; we use scrypt (in node:crypto) with a random
 * salt. Hashing happens in the API layer before a request is proposed, so the log carries the
 * hash, never the password, and applying the entry is deterministic on every member.
 *
 * Stored form: "scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>", so parameters can change later
 * without breaking stored users.
 */
const COST_N = 16384;
const BLOCK_SIZE_R = 8;
const PARALLELISM_P = 1;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Refuse stored parameters that would make a check take unbounded memory or time. */
const COST_N_MAX = 1 << 20;

function derive(
  password: string,
  salt: Buffer,
  options: ScryptOptions,
  length: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, length, { ...options, maxmem: 256 * 1024 * 1024 }, (err, key) =>
      err === null ? resolve(key) : reject(err),
    );
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(
    password,
    salt,
    { N: COST_N, r: BLOCK_SIZE_R, p: PARALLELISM_P },
    HASH_BYTES,
  );
  return [
    'scrypt',
    COST_N,
    BLOCK_SIZE_R,
    PARALLELISM_P,
    salt.toString('base64'),
    hash.toString('base64'),
  ].join('$');
}

/** Whether `password` matches a stored hash; a malformed hash matches nothing. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (
    !Number.isSafeInteger(n) ||
    n < 2 ||
    n > COST_N_MAX ||
    !(r > 0 && r <= 32) ||
    !(p > 0 && p <= 16)
  )
    return false;
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const expected = Buffer.from(parts[5] ?? '', 'base64');
  if (expected.length === 0) return false;
  const actual = await derive(password, salt, { N: n, r, p }, expected.length);
  return timingSafeEqual(actual, expected);
}
