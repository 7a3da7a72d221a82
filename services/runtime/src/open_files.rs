//! The open-file limit a server needs. Every connection is a descriptor, so an instance that may hold
//! `MAX_CONNECTIONS` sockets needs a soft `RLIMIT_NOFILE` above that: at start the soft limit is raised
//! towards it, as far as the hard limit allows (as nginx's `worker_rlimit_nofile` does), and when even the
//! hard limit is too low a warning names both numbers, because connections beyond it would fail at `accept` instead of
//! being refused with the documented "full" error.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors a server uses besides its clients' sockets: Redis and MongoDB links, logs, the runtime's own.
pub const RESERVED: u64 = 1_024;

/// Raises the soft open-file limit to `max_connections` plus [`RESERVED`], as far as the hard limit allows
/// (never lowers it), and returns what is in force; warns when that is still below what is wanted.
pub fn raise_for(max_connections: u32) -> Option<u64> {
    let wanted = u64::from(max_connections) + RESERVED;
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            tracing::warn!(%err, "cannot read the open-file limit (RLIMIT_NOFILE)");
            return None;
        }
    };
    // Only as far as needed: a huge soft limit (some hosts' hard limit is 2^20 or unlimited) makes any
    // code that walks every possible descriptor slow, and this server needs no more than `wanted`.
    let target = wanted.min(hard);
    let soft = if soft < target {
        match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
            Ok(()) => target,
            Err(err) => {
                tracing::warn!(%err, soft, target, "cannot raise the open-file limit");
                soft
            }
        }
    } else {
        soft
    };
    if soft < wanted {
        tracing::warn!(
            open_files = soft,
            max_connections,
            "the open-file limit is below MAX_CONNECTIONS + {RESERVED}: connections beyond it fail at accept \
             instead of being refused as full; raise the host's or the container's nofile limit or lower \
             MAX_CONNECTIONS"
        );
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_covers_the_connections_as_far_as_the_hard_limit_allows() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
        let wanted = 2_000_u32;
        let Some(soft) = raise_for(wanted) else {
            panic!("RLIMIT_NOFILE is readable on Linux");
        };
        let (now_soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
        assert_eq!(soft, now_soft, "the limit reported is the one in force");
        assert!(
            now_soft >= (u64::from(wanted) + RESERVED).min(hard),
            "soft {now_soft}, hard {hard}"
        );
    }
}
