//! `cargo xtask autoscale --once | --watch`: the live autoscaler on the Compose stack. Merge seam only:
//! the `scale` branch of issue 16 replaces this file with the real one (metrics from the engine and the
//! registry, the shared [`super::policy::Scaler`], decisions in the release ledger).

use super::LiveArgs;

pub fn run(args: LiveArgs) -> anyhow::Result<()> {
    let mode = if args.watch { "--watch" } else { "--once" };
    anyhow::bail!(
        "autoscale {mode}: the live autoscaler is not in this build yet (issue 16, `scale` branch); \
         `cargo xtask autoscale simulate` replays a trace through the same policy ({})",
        args.policy.display()
    )
}
