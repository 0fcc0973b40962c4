//! Apply: carry a plan out on the machines — rollouts, health gates, rollback.

pub mod coalesce;
pub mod image;
pub mod lock;
pub mod ops;
pub mod progress;
pub mod rollout;
pub mod time;
