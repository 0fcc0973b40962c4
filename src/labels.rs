//! The label namespace hoist writes on every object it creates.
//!
//! Labels are hoist's only state: observing a project means listing objects by
//! these labels on every machine. An object without `io.hoist.project` is never touched.

/// The project an object belongs to.
pub const PROJECT: &str = "io.hoist.project";
/// The compose service a container runs.
pub const SERVICE: &str = "io.hoist.service";
/// The replica slot (1-based) a container fills.
pub const SLOT: &str = "io.hoist.slot";
/// The machine (inventory name) the object was created for.
pub const MACHINE: &str = "io.hoist.machine";
/// Hash of the fully resolved container spec; equal hash = nothing to do.
pub const SPEC_HASH: &str = "io.hoist.spec-hash";
/// The release (deploy) that created the container.
pub const RELEASE: &str = "io.hoist.release";
/// The spec (canonical JSON) the container was created from: lets a later plan
/// say what changed, attribute by attribute.
pub const SPEC: &str = "io.hoist.spec";
/// The image as the compose file names it (`reg/app:1`) on a container created
/// from the digest that tag was resolved to (`reg/app@sha256:…`).
pub const IMAGE: &str = "io.hoist.image";
/// What a container is for when it fills no slot: `ingress` for the load balancer
/// hoist runs on every machine (src/ingress), `mesh` for a service's proxy (src/mesh).
pub const ROLE: &str = "io.hoist.role";
/// On a replica of the encrypted mesh (`x-hoist: {mesh: {encrypt: true}}`): the ports its
/// machine's TLS gateway forwards to (comma-separated); the gateway's configuration is made
/// from these labels, for every project on the machine (src/mesh/gateway.rs).
pub const GATEWAY_PORTS: &str = "io.hoist.gateway-ports";
/// The service a mesh proxy answers for (`io.hoist.role=mesh`).
pub const MESH_SERVICE: &str = "io.hoist.mesh-service";
/// On the container that holds a project's sealing key (src/seal.rs): the project. It carries no
/// `io.hoist.project`, so what observes a project's containers never meets it; its volume does,
/// so `down --volumes` removes the key with the project's other volumes.
pub const SEALING_KEY: &str = "io.hoist.sealing-key";
/// The cordon of a drained machine: a volume of this name on the machine itself, for every
/// project and every hoist (`hoist drain`, src/apply/cordon.rs). No new replica goes there.
pub const DRAINED_VOLUME: &str = "hoist-drained";
/// On the cordon volume: who drained the machine, and when.
pub const DRAINED: &str = "io.hoist.drained";
