//! The Lua scripts: create a stream with its epoch when missing, and publish into it.

/// The Lua that creates the stream with a fresh epoch when it is missing (never created,
/// deleted, or lost with a restart) or has no epoch, leaving the epoch in `epoch`.
/// KEYS: stream, epoch key. ARGV[1]: a candidate epoch.
macro_rules! ensure_lua {
    () => {
        r"
local epoch = redis.call('GET', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 or not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('XADD', KEYS[1], '*', 'init', epoch)
end
"
    };
}

/// Ensures the stream; returns the epoch.
pub(super) const ENSURE: &str = concat!(ensure_lua!(), "return epoch\n");

/// Ensures the stream, then appends the event (tagged with its epoch) with an approximate
/// `MAXLEN`. ARGV after the candidate epoch: maxlen, has name (0/1), name, has data, data.
pub(super) const PUBLISH: &str = concat!(
    ensure_lua!(),
    r"
local fields = {'p', epoch}
if ARGV[3] == '1' then table.insert(fields, 'n'); table.insert(fields, ARGV[4]) end
if ARGV[5] == '1' then table.insert(fields, 'd'); table.insert(fields, ARGV[6]) end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
return {epoch, id}
"
);
