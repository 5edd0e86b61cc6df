//! The Lua scripts: create a stream with its epoch when missing, and publish into it.

/// The Lua that creates the stream with a fresh epoch when it is missing (never created,
/// deleted, or lost with a restart) or has no epoch, leaving the epoch in `epoch`.
/// Both keys expire after ARGV[2] ms without a publish or a reader's refresh (0: never).
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
"
    };
}

/// Ensures the stream; returns the epoch.
pub(super) const ENSURE: &str = concat!(ensure_lua!(), "return epoch\n");

/// Ensures the stream, then appends the event (tagged with its epoch) with an approximate
/// `MAXLEN`. ARGV after the candidate epoch and the idle age: maxlen, has name (0/1), name,
/// has data, data.
pub(super) const PUBLISH: &str = concat!(
    ensure_lua!(),
    r"
local fields = {'p', epoch}
if ARGV[4] == '1' then table.insert(fields, 'n'); table.insert(fields, ARGV[5]) end
if ARGV[6] == '1' then table.insert(fields, 'd'); table.insert(fields, ARGV[7]) end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
return {epoch, id}
"
);
