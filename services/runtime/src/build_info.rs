//! What was built: the workspace version and the git revision recorded by `build.rs`.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("AVALON_GIT_REVISION");
