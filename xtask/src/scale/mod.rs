//! Growth on the Compose path (issue 16 §2–§3): the edge follows the instance registry, and
//! `cargo xtask scale` changes the live slot's replicas of one service, drain-safe on the way in.
//!
//! One file per concern: [`membership`] (pure: which instances the edge should list), [`follow`]
//! (`cargo xtask edge follow`: apply membership to the edge, fenced and verified), [`choose`] (pure:
//! which instances a scale-in drains), [`live_stack`] (which compose services and release are live),
//! [`replicas`] (scale out / in, shared by `scale` and `autoscale`), [`scale_cmd`] (the `scale` flags).

mod choose;
mod follow;
mod live_stack;
mod membership;
mod replicas;
mod scale_cmd;
mod stats;

pub use follow::Follow;
#[allow(unused_imports)]
pub use follow::{FollowReport, follow_tick, instances_now};
#[allow(unused_imports)]
pub use live_stack::{LiveStack, ServiceKind};
#[allow(unused_imports)]
pub use membership::{Instance, instances};
#[allow(unused_imports)]
pub use replicas::{ScaleReport, mid_release, set_replicas};
pub use scale_cmd::Scale;
#[allow(unused_imports)]
pub use stats::{Usage, usage};
