//! Exported mlx5 VFs: one private socket (`DIR/vf<N>.sock`, mode 0600) and server thread per
//! VF, sharing one set of interrupt routes and the device clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hac_driver::mlx5::model::Mlx5Model;
use hac_vfio_user::{DmaWriteQueue, Server, ServerError, Session};

use super::{DeviceClock, Mlx5EndpointCells, Mlx5EndpointCounters, Mlx5IrqRoutes, Mlx5VfEndpoint};
use crate::vfio_user::{VfioUserConfig, client_dma_queue, socket_path};

/// What one exported mlx5 VF's front end has counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mlx5VfioUserCounters {
    /// Messages, errors, DMA windows, interrupt settings, resets (all clients so far).
    pub session: hac_vfio_user::Counters,
    /// What the mlx5 endpoint refused or ignored.
    pub endpoint: Mlx5EndpointCounters,
    /// Client mode: the writes and interrupts routed through the client (zero in direct mode).
    pub client_dma: hac_vfio_user::ClientDmaCounters,
}

/// One exported VF: its number, socket, endpoint counters and (client mode) write queue.
type ExportedVf = (
    usize,
    PathBuf,
    Arc<Mlx5EndpointCells>,
    Option<Arc<DmaWriteQueue>>,
);

/// Exported mlx5 VFs; dropping it closes the sockets.
pub struct Mlx5Exported {
    servers: Vec<Server>,
    /// Per exported VF: its number, socket, its endpoint's counters and (client mode) its write
    /// queue.
    endpoints: Vec<ExportedVf>,
    routes: Arc<Mlx5IrqRoutes>,
}

impl Mlx5Exported {
    /// The sockets.
    pub fn sockets(&self) -> Vec<PathBuf> {
        self.servers
            .iter()
            .map(|s| s.path().to_path_buf())
            .collect()
    }

    /// The interrupt routes (the daemon's tick delivers the model's interrupts through them).
    pub fn routes(&self) -> &Arc<Mlx5IrqRoutes> {
        &self.routes
    }

    /// What the front end of VF `vf` has counted; `None` if `vf` is not exported.
    pub fn counters(&self, vf: usize) -> Option<Mlx5VfioUserCounters> {
        let (_, path, cells, queue) = self.endpoints.iter().find(|(v, _, _, _)| *v == vf)?;
        let server = self.servers.iter().find(|s| s.path() == path)?;
        Some(Mlx5VfioUserCounters {
            session: server.counters(),
            endpoint: cells.snapshot(),
            client_dma: queue.as_ref().map(|q| q.counters()).unwrap_or_default(),
        })
    }
}

/// Starts one server per VF in `config` on `model` (SR-IOV enabled, the VFs' MACs set by the
/// PF). Device time follows `clock` at every access.
pub fn export_mlx5(
    model: &Mlx5Model,
    clock: &Arc<DeviceClock>,
    config: &VfioUserConfig,
) -> Result<Mlx5Exported, ServerError> {
    let routes = Mlx5IrqRoutes::new();
    let mut servers = Vec::new();
    let mut endpoints = Vec::new();
    for &vf in &config.vfs {
        let Ok(index) = u16::try_from(vf) else {
            continue;
        };
        let mut ep = Mlx5VfEndpoint::new(model.clone(), index, routes.clone(), Some(clock.clone()));
        let queue = client_dma_queue(config.dma_writes, vf)?;
        if let Some(q) = &queue {
            ep = ep.with_client_dma(q.clone());
        }
        let path = socket_path(&config.dir, vf);
        endpoints.push((vf, path.clone(), ep.shared_counters(), queue));
        servers.push(spawn_mlx5(&path, ep)?);
    }
    Ok(Mlx5Exported {
        servers,
        endpoints,
        routes,
    })
}

/// Serves `endpoint` on `path` (mode 0600; a live server's socket there is refused, a stale
/// one replaced).
pub fn spawn_mlx5(path: &Path, endpoint: Mlx5VfEndpoint) -> Result<Server, ServerError> {
    let listener = crate::private_socket::listen_private(path, "--vfio-user directory")
        .map_err(ServerError::Socket)?;
    let label = format!("mlx5 VF {}", endpoint.vf());
    let queue = endpoint.client_dma().cloned();
    let mut session = Session::new(label, endpoint);
    if let Some(q) = queue {
        session.set_client_dma(q);
    }
    Server::spawn(path, listener, session)
}
