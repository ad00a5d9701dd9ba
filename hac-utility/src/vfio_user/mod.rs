//! The vfio-user front end: VFs of the running model exported to virtual machines, so a guest's
//! own Linux `igbvf` (or, with `--family mlx5`, `mlx5_core`) drives them (`hac serve
//! --vfio-user DIR --vfio-user-vfs 0,1`).
//!
//! The protocol and the server are the `hac-vfio-user` crate (re-exported here as [`wire`] and
//! [`server`]); this module holds the device sides and the wiring:
//!
//! * [`endpoint`]: one VF as a `hac_vfio_user::Backend` — config space (with the IDs and BARs
//!   the host virtualises for a VF), BAR0 registers and BAR3 (MSI-X) forwarded to the model,
//!   DMA windows put into the VF's IOMMU, eventfds signalled by the model's MSI-X messages, the
//!   PF agent polled after mailbox accesses.
//! * [`mlx5`]: one mlx5 (ConnectX, 15b3:101e) VF as a `hac_vfio_user::Backend` — the model's
//!   config space and 2 MiB BAR0 (initialization segment, MSI-X, UAR pages), DMA windows in the
//!   VF's IOMMU, the model's queued MSI-X messages written to eventfds, device time following
//!   wall time — and its export ([`mlx5::export_mlx5`]).
//! * [`guest_ram`]: a mapped guest RAM window as the model's DMA memory (both families); in
//!   client mode (`--vfio-user-dma-writes client`) its writes go to the client as `DMA_WRITE`.
//! * [`export`]: one private socket (`DIR/vf<N>.sock`, mode 0600) and server thread per VF.
//! * [`peer`]: a host on the model's wire (smoltcp: ARP, ping, TCP echo), so a guest has
//!   someone to talk to through the egress stage — and so through HAC (either family).
//!
//! The daemon's thread keeps running the device in real time (its 1 ms tick): a guest's TDT
//! write only stores the tail; the frames move when device time advances. The PF agent's
//! mailbox answers and VF reset handling happen inside the register access that needs them.

pub mod endpoint;
pub mod guest_ram;
pub mod mlx5;
pub mod peer;

pub use hac_vfio_user::{DmaWrites, server, wire};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hac_driver::model::{Model, SharedPfAgent};
use igb_hw::VfIndex;

use endpoint::{EndpointCells, IrqRoutes, VfEndpoint};
use hac_vfio_user::{
    ClientDmaCounters, ClientDmaLimits, DmaWriteQueue, Server, ServerError, Session,
};

/// Which VFs to export, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfioUserConfig {
    /// Directory of the sockets (`vf<N>.sock`).
    pub dir: PathBuf,
    /// VFs exported (0-based).
    pub vfs: Vec<usize>,
    /// How the VFs' writes reach guest RAM: through the server's mapping, or as `DMA_WRITE`
    /// requests the client applies (`--vfio-user-dma-writes client`: in its dirty log, so a
    /// COLO checkpoint carries them).
    pub dma_writes: DmaWrites,
}

/// The socket path of VF `vf` in `dir`.
pub fn socket_path(dir: &Path, vf: usize) -> PathBuf {
    dir.join(format!("vf{vf}.sock"))
}

/// Exported VFs; dropping it closes the sockets.
pub struct Exported {
    dir: PathBuf,
    servers: Vec<Server>,
    /// Per exported VF: its number, its endpoint's counters and (client mode) its write queue.
    endpoints: Vec<(usize, Arc<EndpointCells>, Option<Arc<DmaWriteQueue>>)>,
    routes: Arc<IrqRoutes>,
}

/// What one exported VF's vfio-user front end has counted: the server's session counters and
/// the endpoint's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VfioUserCounters {
    /// Messages, errors, DMA windows, interrupt settings, resets (all clients so far).
    pub session: hac_vfio_user::Counters,
    /// What the 82576 endpoint refused.
    pub endpoint: endpoint::EndpointCounters,
    /// Client mode: the writes and interrupts routed through the client (zero in direct mode).
    pub client_dma: ClientDmaCounters,
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

    /// The vfio-user session counters of VF `vf` (messages, errors, DMA windows, interrupt
    /// settings, resets; all its clients so far), if it is exported.
    pub fn counters(&self, vf: usize) -> Option<hac_vfio_user::Counters> {
        let path = socket_path(self.dir.as_path(), vf);
        self.servers
            .iter()
            .find(|s| s.path() == path)
            .map(Server::counters)
    }

    /// Interrupts of VF `vf` that its client's eventfd did not take.
    pub fn interrupts_lost(&self, vf: usize) -> u64 {
        self.routes.lost(vf)
    }

    /// What the front end of VF `vf` has counted; `None` if `vf` is not exported.
    pub fn endpoint_counters(&self, vf: usize) -> Option<VfioUserCounters> {
        let (_, cells, queue) = self.endpoints.iter().find(|(v, _, _)| *v == vf)?;
        Some(VfioUserCounters {
            session: self.counters(vf)?,
            endpoint: cells.snapshot(),
            client_dma: queue.as_ref().map(|q| q.counters()).unwrap_or_default(),
        })
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
    let mut endpoints = Vec::new();
    for &vf in &config.vfs {
        let Some(index) = VfIndex::new(vf) else {
            continue;
        };
        let mut ep = VfEndpoint::new(model.clone(), index, Some(agent.clone()), routes.clone());
        let queue = client_dma_queue(config.dma_writes, vf)?;
        if let Some(q) = &queue {
            ep = ep.with_client_dma(q.clone());
        }
        endpoints.push((vf, ep.shared_counters(), queue));
        servers.push(spawn(&socket_path(&config.dir, vf), ep)?);
    }
    Ok(Exported {
        dir: config.dir.clone(),
        servers,
        endpoints,
        routes,
    })
}

/// In client mode, a new write queue for VF `vf` (default limits).
pub fn client_dma_queue(
    mode: DmaWrites,
    vf: usize,
) -> Result<Option<Arc<DmaWriteQueue>>, ServerError> {
    match mode {
        DmaWrites::Direct => Ok(None),
        DmaWrites::Client => DmaWriteQueue::new(ClientDmaLimits::default())
            .map(Some)
            .map_err(|e| {
                ServerError::Socket(format!("cannot create the DMA write queue of VF {vf}: {e}"))
            }),
    }
}

/// Serves `endpoint` on `path`. The socket is created with mode 0600 (only the daemon's user
/// and root may connect: a client gets the VF's DMA and interrupts); a live server's socket
/// there is refused, a stale one replaced (`private_socket::listen_private`).
pub fn spawn(path: &Path, endpoint: VfEndpoint) -> Result<Server, ServerError> {
    let listener = crate::private_socket::listen_private(path, "--vfio-user directory")
        .map_err(ServerError::Socket)?;
    let label = format!("VF {}", endpoint.vf().get());
    let queue = endpoint.client_dma().cloned();
    let mut session = Session::new(label, endpoint);
    if let Some(q) = queue {
        session.set_client_dma(q);
    }
    Server::spawn(path, listener, session)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::vfio_user::wire::{self, Command, Header, Payload};
    use hac_driver::pf::PfConfig;
    use igb_model::NicConfig;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn message(id: u16, command: Command, body: &[u8]) -> Vec<u8> {
        Header::request(id, command, body)
    }

    fn reply(s: &mut UnixStream) -> (Header, Vec<u8>) {
        let mut h = [0u8; 16];
        s.read_exact(&mut h).unwrap();
        let header = Header::parse(&h).unwrap();
        let mut body = vec![0u8; header.size as usize - 16];
        s.read_exact(&mut body).unwrap();
        (header, body)
    }

    #[test]
    fn a_client_session_over_the_socket_survives_garbage() {
        let dir = std::env::temp_dir().join(format!("hac-vu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vf0.sock");
        let model = Model::new(NicConfig::default());
        let agent = model
            .start_pf_agent(
                PfConfig {
                    num_vfs: 1,
                    ..PfConfig::default()
                },
                &[None],
            )
            .unwrap();
        let ep = VfEndpoint::new(
            model.clone(),
            VfIndex::new(0).unwrap(),
            Some(agent),
            IrqRoutes::new(),
        );
        let server = spawn(&path, ep).unwrap();
        let mut c = UnixStream::connect(server.path()).unwrap();
        let caps = b"{\"capabilities\":{}}\0";
        let v = message(1, Command::Version, &[&[0u8, 0, 0, 0][..], caps].concat());
        c.write_all(&v).unwrap();
        let (h, body) = reply(&mut c);
        assert_eq!((h.id, h.command, h.flags), (1, Command::Version, 1));
        assert!(body.windows(11).any(|w| w == b"max_msg_fds"));
        // An unknown command, then a good read: the connection goes on.
        c.write_all(&message(2, Command::Unknown(77), &[9; 5]))
            .unwrap();
        let (h, _) = reply(&mut c);
        assert_eq!(h.flags, 1 | wire::flags::ERROR);
        let r = Payload::default().u64(0).u32(7).u32(4).0;
        c.write_all(&message(3, Command::RegionRead, &r)).unwrap();
        let (h, body) = reply(&mut c);
        assert_eq!(h.id, 3);
        assert_eq!(&body[16..], &[0x86, 0x80, 0xCA, 0x10]);
        // An impossible size: error reply, then the server closes this connection...
        let mut bad = message(4, Command::RegionRead, &[]);
        bad[4..8].copy_from_slice(&3u32.to_le_bytes());
        c.write_all(&bad).unwrap();
        let (h, _) = reply(&mut c);
        assert_eq!(h.flags, 1 | wire::flags::ERROR);
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        // ...and accepts the next client.
        let mut c2 = UnixStream::connect(server.path()).unwrap();
        c2.write_all(&message(5, Command::RegionRead, &r)).unwrap();
        assert_eq!(reply(&mut c2).0.id, 5);
        drop(c2);
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
