/* plugpeer: the sch_plug side of `hac-lab bench` (docs/performance.md, "HAC against sch_plug").
 *
 * Runs inside User-Mode Linux (scripts/plug/uml-init.sh sets up the namespaces and the qdisc).
 * One process plays three parts, in one event loop, because UML has one virtual CPU:
 *
 *  - the protected VM: frames on `vif1` (netns "vm"), whose root qdisc is `plug`; each frame
 *    carries its flow, sequence number, the checkpoint epoch it was produced in and its submit
 *    time (CLOCK_REALTIME, taken just before the send system call);
 *  - a background flow (an unprotected VM) on `vif2`, default qdisc;
 *  - the checkpoint engine, Remus/libxl style: one rtnetlink socket kept open; every epoch
 *    interval TCQ_PLUG_BUFFER (the checkpoint of the open epoch e; e + 1 opens), and ack_delay
 *    later TCQ_PLUG_RELEASE_ONE (the backup acknowledged e: commit e). The same schedule as the
 *    HAC engine in hac-utility: checkpoints do not wait for acks, so with ack_delay > epoch
 *    several epochs are open at once.
 *  - the receiver: one packet socket in netns "net" (the far ends `wire1`, `wire2`), with kernel
 *    receive timestamps (SO_TIMESTAMPNS, taken when the frame left vif1's qdisc onto the veth).
 *
 * Because the frames are labelled by the same loop that sends BUFFER, a frame's epoch is exact:
 * frames sent before BUFFER belong to the checkpointed epoch, frames after it to the next one.
 * The commit time is read before the RELEASE_ONE system call, so a frame whose receive time is
 * earlier than its epoch's commit left before the commit: an output-commit violation. (It can
 * miss a violation whose frame is timestamped late, never invent one.)
 *
 * After the run: the checkpoints in flight commit, then the last open epoch is checkpointed and
 * committed, the receiver drains (phase 1); then TCQ_PLUG_RELEASE_INDEFINITE, and whatever arrives now
 * (phase 2) was stranded in the plug after its commit. Frames never received were dropped.
 *
 * Output, in --out: frames.bin (32-byte little-endian records, see struct rec_disk),
 * commits.csv (epoch,checkpoint_ns,commit_ns), meta.json.
 *
 * `plugpeer --poweroff` powers the (UML) machine off: the last step of the init script.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ETHERTYPE 0x88B5
#define MAGIC 0x48414350u /* "HACP" */
#define BATCH 64
/* Frames per send call of the saturating sender: small enough that the loop meets 1 ms epochs. */
#define SATURATE_BATCH 16
#define MAX_FRAME 1514
#define FLOW_PROTECTED 0
#define FLOW_BACKGROUND 1

static const uint8_t SRC_MAC[2][6] = {{0x02, 0x1b, 0x21, 0xc0, 0, 0}, {0x02, 0x1b, 0x21, 0xc0, 0, 1}};
static const uint8_t DST_MAC[2][6] = {{0x02, 0xaa, 0, 0, 0, 1}, {0x02, 0xaa, 0, 0, 0, 2}};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "plugpeer: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- records ---- */

struct rec {
    uint32_t seq, epoch;
    uint64_t submit_ns, rx_ns;
    uint8_t flow, phase;
};

/* On disk: seq u32, epoch u32, submit_ns u64, rx_ns u64, flow u8, phase u8, 6 zero bytes. */
#define REC_DISK 32

static struct rec *recs;
static size_t nrecs, caprecs;

static void add_rec(struct rec r) {
    if (nrecs == caprecs) {
        caprecs = caprecs ? caprecs * 2 : 1 << 16;
        recs = realloc(recs, caprecs * sizeof *recs);
        if (!recs) die("out of memory for %zu records", caprecs);
    }
    recs[nrecs++] = r;
}

struct commit {
    uint32_t epoch;
    uint64_t checkpoint_ns, commit_ns;
};
static struct commit *commits;
static size_t ncommits, capcommits;

/* ---- netlink: the Remus-style plug controller ---- */

static int nl_fd;
static uint32_t nl_seq;
static int plug_ifindex;
static uint64_t nl_max_ns, nl_total_ns, nl_ops;

static void plug_action(int action) {
    struct {
        struct nlmsghdr n;
        struct tcmsg t;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof req);
    req.n.nlmsg_type = RTM_NEWQDISC;
    req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.n.nlmsg_seq = ++nl_seq;
    req.t.tcm_family = AF_UNSPEC;
    req.t.tcm_ifindex = plug_ifindex;
    req.t.tcm_parent = TC_H_ROOT;
    size_t len = NLMSG_LENGTH(sizeof req.t);
    struct rtattr *a = (struct rtattr *)((char *)&req + NLMSG_ALIGN(len));
    a->rta_type = TCA_KIND;
    a->rta_len = RTA_LENGTH(5);
    memcpy(RTA_DATA(a), "plug", 5);
    len = NLMSG_ALIGN(len) + RTA_ALIGN(a->rta_len);
    a = (struct rtattr *)((char *)&req + len);
    a->rta_type = TCA_OPTIONS;
    a->rta_len = RTA_LENGTH(sizeof(struct tc_plug_qopt));
    struct tc_plug_qopt opt = {.action = action, .limit = 0};
    memcpy(RTA_DATA(a), &opt, sizeof opt);
    len += RTA_ALIGN(a->rta_len);
    req.n.nlmsg_len = (uint32_t)len;
    uint64_t t0 = now_ns();
    if (send(nl_fd, &req, len, 0) != (ssize_t)len) die("netlink send: %s", strerror(errno));
    char buf[512];
    for (;;) {
        ssize_t n = recv(nl_fd, buf, sizeof buf, 0);
        if (n < 0) die("netlink recv: %s", strerror(errno));
        struct nlmsghdr *h = (struct nlmsghdr *)buf;
        if (!NLMSG_OK(h, (size_t)n)) die("netlink: short answer");
        if (h->nlmsg_seq != nl_seq) continue;
        if (h->nlmsg_type != NLMSG_ERROR) die("netlink: unexpected answer type %u", h->nlmsg_type);
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (e->error) die("plug action %d refused: %s", action, strerror(-e->error));
        break;
    }
    uint64_t d = now_ns() - t0;
    nl_total_ns += d;
    nl_ops++;
    if (d > nl_max_ns) nl_max_ns = d;
}

/* ---- sockets in namespaces ---- */

static void enter_netns(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open %s: %s", path, strerror(errno));
    if (setns(fd, CLONE_NEWNET) < 0) die("setns %s: %s", name, strerror(errno));
    close(fd);
}

static int tx_socket(const char *dev) {
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) die("packet socket: %s", strerror(errno));
    /* Held frames stay charged to the socket: the plug's byte limit, not the socket buffer,
     * must be what bounds them (a VM's frames in dom0 are not bounded by a socket). */
    int big = 1 << 29;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
        die("SO_SNDBUFFORCE: %s", strerror(errno));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(dev)};
    if (!sll.sll_ifindex) die("no device %s", dev);
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind %s: %s", dev, strerror(errno));
    return fd;
}

/* ---- frames ---- */

struct sender {
    int fd;
    uint8_t flow;
    uint32_t seq;
    uint64_t sent, refused, interval_ns, next_ns;
    uint8_t buf[BATCH][MAX_FRAME];
    struct iovec iov[BATCH];
    struct mmsghdr msg[BATCH];
};

static size_t frame_len;

static void sender_init(struct sender *s, int fd, uint8_t flow, double rate_fps, uint64_t t0) {
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->flow = flow;
    s->interval_ns = rate_fps > 0 ? (uint64_t)(1e9 / rate_fps) : 0;
    s->next_ns = t0;
    for (int i = 0; i < BATCH; i++) {
        memcpy(s->buf[i], DST_MAC[flow], 6);
        memcpy(s->buf[i] + 6, SRC_MAC[flow], 6);
        s->buf[i][12] = ETHERTYPE >> 8;
        s->buf[i][13] = ETHERTYPE & 0xff;
        s->iov[i].iov_base = s->buf[i];
        s->iov[i].iov_len = frame_len;
        s->msg[i].msg_hdr.msg_iov = &s->iov[i];
        s->msg[i].msg_hdr.msg_iovlen = 1;
    }
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Sends `n` frames of the current epoch. A frame the kernel refuses (the plug at its byte
 * limit answers ENOBUFS to the socket; a VM behind netback is never told) counts as refused:
 * it is not retried, exactly as a guest's frame dropped in the host is gone. */
static void sender_send(struct sender *s, int n, uint32_t epoch) {
    uint64_t t = now_ns();
    for (int i = 0; i < n; i++) {
        uint8_t *p = s->buf[i] + 14;
        put32(p, MAGIC);
        p[4] = s->flow;
        put32(p + 8, s->seq + (uint32_t)i);
        put32(p + 12, s->flow == FLOW_PROTECTED ? epoch : 0);
        put64(p + 16, t);
    }
    int done = 0;
    while (done < n) {
        int r = sendmmsg(s->fd, s->msg + done, (unsigned)(n - done), 0);
        if (r < 0) {
            if (errno == ENOBUFS) {
                s->refused++;
                done++; /* that frame was dropped by the qdisc */
                continue;
            }
            if (errno == EINTR) continue;
            die("sendmmsg: %s", strerror(errno));
        }
        done += r;
        if (done < n) {
            /* sendmmsg stops at the first frame that fails and, having sent others, returns
             * their count and drops the error: that frame was refused. */
            s->refused++;
            done++;
        }
    }
    s->sent += (uint64_t)n;
    s->seq += (uint32_t)n;
}

/* ---- receiver ---- */

static int rx_fd;
static uint64_t rx_bad;
static uint8_t rx_buf[BATCH][2048];
static char rx_ctl[BATCH][CMSG_SPACE(sizeof(struct timespec))];

static size_t drain(uint8_t phase) {
    size_t total = 0;
    for (;;) {
        struct iovec iov[BATCH];
        struct mmsghdr m[BATCH];
        memset(m, 0, sizeof m);
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = rx_buf[i];
            iov[i].iov_len = sizeof rx_buf[i];
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
            m[i].msg_hdr.msg_control = rx_ctl[i];
            m[i].msg_hdr.msg_controllen = sizeof rx_ctl[i];
        }
        int n = recvmmsg(rx_fd, m, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return total;
            die("recvmmsg: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            const uint8_t *p = rx_buf[i] + 14;
            if (m[i].msg_len < 14 + 24 || get32(p) != MAGIC) {
                rx_bad++;
                continue;
            }
            uint64_t rx = 0;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&m[i].msg_hdr); c; c = CMSG_NXTHDR(&m[i].msg_hdr, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                    struct timespec ts;
                    memcpy(&ts, CMSG_DATA(c), sizeof ts);
                    rx = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
                }
            if (!rx) rx = now_ns();
            add_rec((struct rec){.flow = p[4], .seq = get32(p + 8), .epoch = get32(p + 12),
                                 .submit_ns = get64(p + 16), .rx_ns = rx, .phase = phase});
        }
        total += (size_t)n;
        if (n < BATCH) return total;
    }
}

/* Waits until `deadline` (or a frame arrives), then drains. */
static void wait_until(uint64_t deadline, uint8_t phase) {
    uint64_t t = now_ns();
    if (deadline > t) {
        uint64_t d = deadline - t;
        struct timespec ts = {.tv_sec = (time_t)(d / 1000000000ull), .tv_nsec = (long)(d % 1000000000ull)};
        struct pollfd pfd = {.fd = rx_fd, .events = POLLIN};
        ppoll(&pfd, 1, &ts, NULL);
    }
    drain(phase);
}

/* ---- the checkpoint engine ---- */

#define MAX_ACKS 65536
static struct {
    uint64_t due, checkpoint_ns;
    uint32_t epoch;
} acks[MAX_ACKS];
static size_t ack_head, ack_tail;

static void checkpoint(uint32_t *open_epoch, uint64_t ack_ns) {
    uint64_t t = now_ns();
    plug_action(TCQ_PLUG_BUFFER);
    if (ack_tail - ack_head == MAX_ACKS) die("more than %d checkpoints in flight", MAX_ACKS);
    acks[ack_tail % MAX_ACKS].due = t + ack_ns;
    acks[ack_tail % MAX_ACKS].checkpoint_ns = t;
    acks[ack_tail % MAX_ACKS].epoch = *open_epoch;
    ack_tail++;
    (*open_epoch)++;
}

static void commit_due(uint64_t t) {
    while (ack_head < ack_tail && acks[ack_head % MAX_ACKS].due <= t) {
        size_t k = ack_head % MAX_ACKS;
        uint64_t c = now_ns();
        plug_action(TCQ_PLUG_RELEASE_ONE);
        if (ncommits == capcommits) {
            capcommits = capcommits ? capcommits * 2 : 1024;
            commits = realloc(commits, capcommits * sizeof *commits);
            if (!commits) die("out of memory");
        }
        commits[ncommits++] = (struct commit){acks[k].epoch, acks[k].checkpoint_ns, c};
        ack_head++;
    }
}

static uint64_t next_ack(void) { return ack_head < ack_tail ? acks[ack_head % MAX_ACKS].due : UINT64_MAX; }

static uint64_t min3(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t m = a < b ? a : b;
    return m < c ? m : c;
}

static void usage(void) {
    die("usage: plugpeer --out DIR --size BYTES --mode paced|saturate --rate FPS --bg-rate FPS "
        "--epoch-us US --ack-us US --duration-ms MS [--drain-ms MS]  |  plugpeer --poweroff");
}

int main(int argc, char **argv) {
    const char *out = NULL, *mode = "paced";
    double rate = 0, bg_rate = 0;
    uint64_t epoch_ns = 0, ack_ns = 0, duration_ns = 0, drain_ns = 100000000ull;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "--poweroff")) {
            sync();
            reboot(RB_POWER_OFF);
            die("reboot: %s", strerror(errno));
        }
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--out")) out = v;
        else if (!strcmp(k, "--size")) frame_len = strtoul(v, NULL, 10);
        else if (!strcmp(k, "--mode")) mode = v;
        else if (!strcmp(k, "--rate")) rate = strtod(v, NULL);
        else if (!strcmp(k, "--bg-rate")) bg_rate = strtod(v, NULL);
        else if (!strcmp(k, "--epoch-us")) epoch_ns = strtoull(v, NULL, 10) * 1000;
        else if (!strcmp(k, "--ack-us")) ack_ns = strtoull(v, NULL, 10) * 1000;
        else if (!strcmp(k, "--duration-ms")) duration_ns = strtoull(v, NULL, 10) * 1000000;
        else if (!strcmp(k, "--drain-ms")) drain_ns = strtoull(v, NULL, 10) * 1000000;
        else usage();
    }
    int saturate = !strcmp(mode, "saturate");
    if (!out || frame_len < 60 || frame_len > MAX_FRAME || !epoch_ns || !duration_ns ||
        (!saturate && strcmp(mode, "paced")) || (!saturate && rate <= 0))
        usage();

    enter_netns("vm");
    int tx_protected = tx_socket("vif1");
    int tx_background = tx_socket("vif2");
    plug_ifindex = (int)if_nametoindex("vif1");
    nl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (nl_fd < 0) die("netlink socket: %s", strerror(errno));
    struct sockaddr_nl snl = {.nl_family = AF_NETLINK};
    if (bind(nl_fd, (struct sockaddr *)&snl, sizeof snl) < 0) die("netlink bind: %s", strerror(errno));
    enter_netns("net");
    rx_fd = socket(AF_PACKET, SOCK_RAW, htons(ETHERTYPE));
    if (rx_fd < 0) die("rx socket: %s", strerror(errno));
    int one = 1, big = 1 << 29;
    if (setsockopt(rx_fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
        die("SO_TIMESTAMPNS: %s", strerror(errno));
    if (setsockopt(rx_fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
        die("SO_RCVBUFFORCE: %s", strerror(errno));

    static struct sender prot, bg;
    uint64_t t_start = now_ns();
    sender_init(&prot, tx_protected, FLOW_PROTECTED, saturate ? 0 : rate, t_start);
    sender_init(&bg, tx_background, FLOW_BACKGROUND, bg_rate, t_start);
    uint64_t t_end = t_start + duration_ns, next_ckpt = t_start + epoch_ns, late_ckpts = 0;
    uint32_t open_epoch = 1;

    for (;;) {
        uint64_t t = now_ns();
        if (t >= t_end) break;
        if (t >= next_ckpt) {
            checkpoint(&open_epoch, ack_ns);
            next_ckpt += epoch_ns;
            if (next_ckpt <= t) { /* the loop fell more than an epoch behind */
                late_ckpts++;
                next_ckpt = t + epoch_ns;
            }
        }
        commit_due(now_ns());
        if (saturate) {
            sender_send(&prot, SATURATE_BATCH, open_epoch);
        } else {
            int n = 0;
            while (prot.next_ns <= t && n < BATCH) { prot.next_ns += prot.interval_ns; n++; }
            if (n) sender_send(&prot, n, open_epoch);
        }
        if (bg.interval_ns) {
            int n = 0;
            while (bg.next_ns <= t && n < BATCH) { bg.next_ns += bg.interval_ns; n++; }
            if (n) sender_send(&bg, n, 0);
        }
        drain(0);
        if (!saturate) {
            uint64_t wake = min3(next_ckpt, next_ack(), prot.next_ns);
            if (bg.interval_ns && bg.next_ns < wake) wake = bg.next_ns;
            if (t_end < wake) wake = t_end;
            wait_until(wake, 0);
        }
    }
    /* The VM stops; its last open epoch is checkpointed and committed like the others. */
    uint64_t t_stop = now_ns();
    /* The checkpoints in flight commit first, so that the harness's own last checkpoint never
     * opens a second epoch (only the run's schedule does). */
    for (int last = 0; last < 2; last++) {
        while (ack_head < ack_tail) {
            wait_until(next_ack(), 1);
            commit_due(now_ns());
        }
        if (!last) checkpoint(&open_epoch, ack_ns);
    }
    uint64_t t_last_commit = now_ns();
    while (now_ns() < t_last_commit + drain_ns) wait_until(t_last_commit + drain_ns, 1);
    /* Anything still in the plug now was stranded after its commit. */
    uint64_t t_indef = now_ns();
    plug_action(TCQ_PLUG_RELEASE_INDEFINITE);
    while (now_ns() < t_indef + drain_ns) wait_until(t_indef + drain_ns, 2);

    struct tpacket_stats st = {0};
    socklen_t sl = sizeof st;
    getsockopt(rx_fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);

    char path[4096];
    snprintf(path, sizeof path, "%s/frames.bin", out);
    FILE *f = fopen(path, "wb");
    if (!f) die("create %s: %s", path, strerror(errno));
    for (size_t i = 0; i < nrecs; i++) {
        uint8_t b[REC_DISK] = {0};
        put32(b, recs[i].seq);
        put32(b + 4, recs[i].epoch);
        put64(b + 8, recs[i].submit_ns);
        put64(b + 16, recs[i].rx_ns);
        b[24] = recs[i].flow;
        b[25] = recs[i].phase;
        if (fwrite(b, REC_DISK, 1, f) != 1) die("write %s", path);
    }
    if (fclose(f)) die("close %s", path);
    snprintf(path, sizeof path, "%s/commits.csv", out);
    f = fopen(path, "w");
    if (!f) die("create %s: %s", path, strerror(errno));
    fprintf(f, "epoch,checkpoint_ns,commit_ns\n");
    for (size_t i = 0; i < ncommits; i++)
        fprintf(f, "%u,%llu,%llu\n", commits[i].epoch, (unsigned long long)commits[i].checkpoint_ns,
                (unsigned long long)commits[i].commit_ns);
    if (fclose(f)) die("close %s", path);
    snprintf(path, sizeof path, "%s/meta.json", out);
    f = fopen(path, "w");
    if (!f) die("create %s: %s", path, strerror(errno));
    fprintf(f,
            "{\"frame_len\": %zu, \"mode\": \"%s\", \"rate_fps\": %.1f, \"bg_rate_fps\": %.1f,\n"
            " \"epoch_ns\": %llu, \"ack_ns\": %llu, \"start_ns\": %llu, \"end_ns\": %llu,\n"
            " \"stop_ns\": %llu, \"sent\": [%llu, %llu], \"refused\": [%llu, %llu],\n"
            " \"last_epoch\": %u, \"late_checkpoints\": %llu, \"netlink_ops\": %llu,\n"
            " \"netlink_mean_ns\": %llu, \"netlink_max_ns\": %llu, \"rx_socket_drops\": %u,\n"
            " \"rx_bad\": %llu, \"received\": %zu}\n",
            frame_len, mode, rate, bg_rate, (unsigned long long)epoch_ns, (unsigned long long)ack_ns,
            (unsigned long long)t_start, (unsigned long long)t_end, (unsigned long long)t_stop,
            (unsigned long long)prot.sent, (unsigned long long)bg.sent,
            (unsigned long long)prot.refused, (unsigned long long)bg.refused, open_epoch - 1,
            (unsigned long long)late_ckpts, (unsigned long long)nl_ops,
            (unsigned long long)(nl_ops ? nl_total_ns / nl_ops : 0), (unsigned long long)nl_max_ns,
            st.tp_drops, (unsigned long long)rx_bad, nrecs);
    if (fclose(f)) die("close %s", path);
    printf("plugpeer: %s %zu B: sent %llu+%llu, received %zu, commits %zu, refused %llu\n", mode,
           frame_len, (unsigned long long)prot.sent, (unsigned long long)bg.sent, nrecs, ncommits,
           (unsigned long long)prot.refused);
    return 0;
}
