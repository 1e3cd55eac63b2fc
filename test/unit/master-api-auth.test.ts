import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { apiAuthenticator, type UserCheck } from '../../master/api-auth.js';
import { ApiError } from '../../master/errors.js';
import { SimClock } from '../../shared/clock.js';
import { createLogger } from '../../shared/log.js';

const basic = (user: string, password: string): IncomingMessage =>
  ({ headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } }) as IncomingMessage;

describe('API authentication cache', () => {
  it('asks the store once per user for 60 s, again after, and never remembers a refusal', async () => {
    const clock = new SimClock(0);
    const asked: string[] = [];
    let answer: UserCheck = 'valid';
    const authenticate = apiAuthenticator({
      clock, logger: createLogger('silent'),
      verifyUser: async (user, password) => {
        asked.push(`${user}:${password}`);
        return answer;
      },
    });
    if (authenticate === undefined) throw new Error('expected an authenticator');
    await authenticate(basic('ann', 'pw'));
    clock.advance(59_000);
    await authenticate(basic('ann', 'pw'));
    expect(asked).toEqual(['ann:pw']);
    clock.advance(2_000);
    answer = 'invalid';
    await expect(authenticate(basic('ann', 'pw'))).rejects.toBeInstanceOf(ApiError);
    await expect(authenticate(basic('ann', 'pw'))).rejects.toThrow('authentication failed for user ann');
    expect(asked).toEqual(['ann:pw', 'ann:pw', 'ann:pw']);
  });

  it('needs no credentials without store auth or a token', () => {
    expect(apiAuthenticator({ clock: new SimClock(0), logger: createLogger('silent') })).toBeUndefined();
  });
});
