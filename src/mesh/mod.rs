//! The mesh: service names that work across machines. With `x-hoist: {mesh: {}}` in the
//! compose file, a container on any machine reaches `api:8080` or `db:5432` wherever their
//! replicas run: every machine has, per meshed service, a small TCP proxy (HAProxy) that answers
//! to the service's names on the project networks and balances connections over the service's
//! healthy replicas on all machines, which publish their ports on their machine's address.
//! `spec` reads what is meshed, `render` writes a proxy's configuration
//! (templates/haproxy.cfg.j2), `live` keeps the proxies in step with what runs, during rollouts
//! too (it is a rollout hook). docs/networking.md has the design and its limits.

pub mod credentials;
pub mod gateway;
pub mod live;
pub mod reload;
pub mod render;
pub mod spec;
pub mod tls;

pub use live::Mesh;
pub use spec::MeshSpec;
