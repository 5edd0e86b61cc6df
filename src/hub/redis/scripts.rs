//! The Lua scripts: create a stream with its epoch when missing, publish into it (and announce
//! the entry on the topic's Pub/Sub channel), and find where a topic's stream ends.

/// The Lua that creates the stream with a fresh epoch when it is missing (never created,
/// deleted, or lost with a restart) or has no epoch, leaving the epoch in `epoch`.
/// Both keys expire after ARGV[2] ms without a publish or a refresh (0: never).
/// KEYS: stream, epoch key. ARGV[1]: a candidate epoch, ARGV[2]: the idle age in ms.
macro_rules! ensure_lua {
    () => {
        r"
local epoch = redis.call('GET', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 or not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('XADD', KEYS[1], '*', 'init', epoch)
end
if ARGV[2] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1][1]
"
    };
}

/// Ensures the stream; returns its epoch and the id of its last entry.
pub(super) const START: &str = concat!(ensure_lua!(), "return {epoch, last}\n");

/// Ensures the stream, then appends the event (tagged with its epoch) with an approximate
/// `MAXLEN`, and publishes it on the channel named like the stream with the id of the entry
/// before it, so a reader notices a message it missed (see `wire::parse_live`). ARGV after the
/// candidate epoch and the idle age: maxlen, has name (0/1), name, has data, data.
pub(super) const PUBLISH: &str = concat!(
    ensure_lua!(),
    r"
local fields = {'p', epoch}
local name, data = '', ''
if ARGV[4] == '1' then table.insert(fields, 'n'); table.insert(fields, ARGV[5]); name = '+' .. ARGV[5] end
if ARGV[6] == '1' then table.insert(fields, 'd'); table.insert(fields, ARGV[7]); data = '+' .. ARGV[7] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
redis.call('PUBLISH', KEYS[1], epoch .. '\n' .. last .. '\n' .. id .. '\n' .. name .. '\n' .. data)
return {epoch, id}
"
);
