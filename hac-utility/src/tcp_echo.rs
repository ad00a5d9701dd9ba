//! The TCP echo of a smoltcp socket, shared by the daemon's wire peer (`vfio_user::peer`) and
//! the lab's smoltcp-on-a-VF case (`hac-lab vf-smoltcp`).

use hac_driver::phy::smoltcp::socket::tcp;

/// The TCP echo of a smoltcp socket: moves what it received back into its send buffer (as much
/// as fits), and closes our side once the peer closed and everything was sent. Returns the bytes
/// echoed.
pub fn echo_tcp(s: &mut tcp::Socket<'_>) -> usize {
    let mut echoed = 0;
    while s.can_recv() && s.can_send() {
        let room = s.send_capacity() - s.send_queue();
        let mut chunk = Vec::new();
        let n = s
            .recv(|b| {
                let n = b.len().min(room);
                chunk.extend_from_slice(&b[..n]);
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        echoed += s.send_slice(&chunk).unwrap_or(0);
    }
    if s.state() == tcp::State::CloseWait && s.send_queue() == 0 {
        s.close();
    }
    echoed
}
