//! Apply: carry a plan out on the machines — rollouts, health gates, rollback.

pub mod coalesce;
pub mod cordon;
pub mod fleet_record;
pub mod image;
pub mod lock;
pub mod ops;
pub mod progress;
pub mod rollout;
pub mod scale_record;
pub mod time;
