//! The ingress: a load balancer (Caddy by default) on every machine, in front of
//! every replica of the routed services on every machine. Routes come from
//! `x-hoist.ingress` in the compose file (`spec`), the configuration is a pure
//! rendering of routes and upstreams (`render`, templates/Caddyfile.j2), and
//! `live` keeps the ingress containers and their configuration in step with
//! what runs, including during rollouts (it is the rollout's hook).
//! docs/ingress.md is the user's guide.

pub mod address;
pub mod health;
pub mod live;
pub mod render;
pub mod spec;

pub use live::Ingress;
pub use spec::IngressSpec;
