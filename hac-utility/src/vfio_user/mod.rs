//! The vfio-user front end: VFs of the running model exported to virtual machines, so a guest's
//! own Linux `igbvf` drives them (`hac serve --vfio-user DIR --vfio-user-vfs 0,1`).
//!
//! Blocks and data flow:
//!
//! * [`wire`]: the message format (header, commands, replies); parsing never panics.
//! * [`endpoint`]: one VF as a vfio-user device — config space (with the IDs and BARs the host
//!   virtualises for a VF), BAR0 registers and BAR3 (MSI-X) forwarded to the model, guest
//!   memory from `DMA_MAP` mapped into the VF's IOMMU, eventfds from `SET_IRQS` signalled by the
//!   model's MSI-X messages, the PF agent polled after mailbox accesses.
//! * [`server`]: one Unix socket and thread per VF (`DIR/vf<N>.sock`), reading whole messages
//!   with their file descriptors and answering in order.
//! * [`peer`]: a host on the model's wire (smoltcp: ARP, ping, TCP echo), so a guest has
//!   someone to talk to through the egress stage — and so through HAC.
//!
//! The daemon's thread keeps running the device in real time (its 1 ms tick): a guest's TDT
//! write only stores the tail; the frames move when device time advances. The PF agent's
//! mailbox answers and VF reset handling happen inside the register access that needs them.

pub mod endpoint;
pub mod peer;
pub mod server;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hac_driver::model::{Model, SharedPfAgent};
use igb_hw::VfIndex;

use endpoint::{IrqRoutes, VfEndpoint};
use server::{Server, ServerError};

/// Which VFs to export, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfioUserConfig {
    /// Directory of the sockets (`vf<N>.sock`).
    pub dir: PathBuf,
    /// VFs exported (0-based).
    pub vfs: Vec<usize>,
}

/// The socket path of VF `vf` in `dir`.
pub fn socket_path(dir: &Path, vf: usize) -> PathBuf {
    dir.join(format!("vf{vf}.sock"))
}

/// Exported VFs; dropping it closes the sockets.
pub struct Exported {
    servers: Vec<Server>,
    routes: Arc<IrqRoutes>,
}

impl Exported {
    /// The sockets.
    pub fn sockets(&self) -> Vec<PathBuf> {
        self.servers
            .iter()
            .map(|s| s.path().to_path_buf())
            .collect()
    }

    /// Interrupts delivered to clients so far.
    pub fn interrupts_signalled(&self) -> u64 {
        self.routes.signalled()
    }

    /// Interrupts of VF `vf` that its client's eventfd did not take.
    pub fn interrupts_lost(&self, vf: usize) -> u64 {
        self.routes.lost(vf)
    }

    /// What the endpoint of VF `vf` has counted; `None` if `vf` is not exported.
    pub fn endpoint_counters(&self, vf: usize) -> Option<endpoint::EndpointCounters> {
        self.servers
            .iter()
            .find(|s| s.path().file_name() == socket_path(Path::new(""), vf).file_name())
            .map(Server::counters)
    }
}

/// Starts one server per VF in `config`. The VFs must be enabled (the PF agent did it).
pub fn export(
    model: &Model,
    agent: &SharedPfAgent,
    config: &VfioUserConfig,
) -> Result<Exported, ServerError> {
    let routes = IrqRoutes::new();
    routes.install(model);
    let mut servers = Vec::new();
    for &vf in &config.vfs {
        let Some(index) = VfIndex::new(vf) else {
            continue;
        };
        let ep = VfEndpoint::new(model.clone(), index, Some(agent.clone()), routes.clone());
        servers.push(Server::spawn(&socket_path(&config.dir, vf), ep)?);
    }
    Ok(Exported { servers, routes })
}
