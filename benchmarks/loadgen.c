/* Load generator for the rendezvous server benchmark (benchmarks/bench_server.py compiles it).
 *
 * Why C: the server under test is Python and gets one core; a Python load generator on the
 * other core costs as much per datagram as the server and would measure itself. This one uses
 * sendmmsg/recvmmsg (64 datagrams per system call) so that the server is the bottleneck.
 *
 * Every simulated client has its own endpoint: one socket bound to 0.0.0.0:P sends from
 * 127.a.b.c:P, choosing the source address per datagram with IP_PKTINFO (ipi_spec_dst), and
 * learns from IP_PKTINFO on receive (ipi_addr) which client a reply is for. So 100k sessions
 * really are 200k distinct endpoints to the server, as they would be on the Internet.
 *
 * Usage: loadgen HOST PORT MODE SESSIONS WINDOW SECONDS
 *   MODE poll : register SESSIONS sessions with two members each (retrying until every member
 *               got its reply), then re-register (poll) round-robin for SECONDS with at most
 *               WINDOW requests in flight; a poll's reply lists the other member, so it is
 *               non-empty and told apart from the server's 0-byte keep-alives.
 *   MODE fresh: every request is a registration in a new session from a new endpoint; the
 *               answer is the 0-byte "no other members" list. It is told from keep-alives by
 *               being the first datagram that endpoint receives (the server answers at once,
 *               keep-alives come later), so each endpoint counts once.
 *   MODE echo : as poll without the set-up, for the bare echo baselines (the payload comes back).
 * Prints a line of JSON when the set-up is done, and one with the counts at the end.
 *
 * Usage: loadgen --echo-server PORT
 *   The bare C baseline: recvfrom + sendto per datagram on 127.0.0.1:PORT, no protocol at all.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define STALL_NS 100000000LL /* 100 ms without a reply: treat what is in flight as lost */

static int sock;
static struct sockaddr_in server;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Endpoint index -> 127.a.b.c in network order, starting at 127.1.0.0 (127.0.0.1 is the server). */
static uint32_t member_addr(uint32_t idx) {
    uint32_t v = (127u << 24) | ((1u + (idx >> 16)) << 16) | (idx & 0xffffu);
    return htonl(v);
}

static uint32_t addr_member(uint32_t addr_net) {
    uint32_t v = ntohl(addr_net);
    return (((v >> 16) & 0xffu) - 1u) << 16 | (v & 0xffffu);
}

/* --- batched send ------------------------------------------------------------------------- */

typedef struct {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    char payload[BATCH][32];
    char cmsg[BATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
    int n;
} SendBatch;

static void batch_add(SendBatch *b, uint32_t member, const char *payload, int len) {
    int i = b->n++;
    memcpy(b->payload[i], payload, len);
    b->iov[i].iov_base = b->payload[i];
    b->iov[i].iov_len = len;
    struct msghdr *h = &b->msgs[i].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = &server;
    h->msg_namelen = sizeof server;
    h->msg_iov = &b->iov[i];
    h->msg_iovlen = 1;
    h->msg_control = b->cmsg[i];
    h->msg_controllen = sizeof b->cmsg[i];
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo *pi = (struct in_pktinfo *)CMSG_DATA(c);
    memset(pi, 0, sizeof *pi);
    pi->ipi_spec_dst.s_addr = member_addr(member);
}

/* Send the whole batch; returns how many went out (the kernel may refuse some when full). */
static int batch_flush(SendBatch *b) {
    int done = 0;
    while (done < b->n) {
        int r = sendmmsg(sock, b->msgs + done, b->n - done, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            break; /* EAGAIN: drop the rest, as UDP may */
        }
        done += r;
    }
    b->n = 0;
    return done;
}

/* --- batched receive ---------------------------------------------------------------------- */

typedef struct {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    char data[BATCH][2048];
    char cmsg[BATCH][CMSG_SPACE(sizeof(struct in_pktinfo))];
} RecvBatch;

static RecvBatch rb;

/* Receive what is queued (up to BATCH); returns the count, 0 if nothing. */
static int batch_recv(void) {
    for (int i = 0; i < BATCH; i++) {
        rb.iov[i].iov_base = rb.data[i];
        rb.iov[i].iov_len = sizeof rb.data[i];
        struct msghdr *h = &rb.msgs[i].msg_hdr;
        memset(h, 0, sizeof *h);
        h->msg_iov = &rb.iov[i];
        h->msg_iovlen = 1;
        h->msg_control = rb.cmsg[i];
        h->msg_controllen = sizeof rb.cmsg[i];
    }
    int r = recvmmsg(sock, rb.msgs, BATCH, MSG_DONTWAIT, NULL);
    return r < 0 ? 0 : r;
}

/* The client a received datagram was sent to. */
static uint32_t recv_member(int i) {
    struct msghdr *h = &rb.msgs[i].msg_hdr;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
            return addr_member(((struct in_pktinfo *)CMSG_DATA(c))->ipi_addr.s_addr);
    return UINT32_MAX;
}

static void wait_readable(int ms) {
    struct pollfd p = {sock, POLLIN, 0};
    poll(&p, 1, ms);
}

static int session_id(char *out, char tag, uint64_t n) { return sprintf(out, "%c%09llu", tag, (unsigned long long)n); }

/* --- set-up: every member of every session registered once, lost ones retried ------------- */

static long long setup(uint32_t sessions, int window) {
    uint32_t members = 2 * sessions;
    unsigned char *acked = calloc(members, 1);
    uint32_t remaining = members;
    SendBatch *sb = calloc(1, sizeof *sb);
    char id[32];
    /* Member A of session i is endpoint 2i, member B is 2i+1; all A first so B's reply is non-empty. */
    for (int round = 0; round < 50 && remaining; round++) {
        for (int half = 0; half < 2; half++) {
            uint32_t next = 0;
            long inflight = 0;
            long long last_rx = now_ns();
            while (1) {
                while (next < sessions && inflight < window && sb->n < BATCH) {
                    uint32_t m = 2 * next + half;
                    if (!acked[m]) {
                        batch_add(sb, m, id, session_id(id, 's', next));
                        inflight++;
                    }
                    next++;
                }
                if (sb->n) batch_flush(sb);
                int r = batch_recv();
                for (int i = 0; i < r; i++) {
                    uint32_t m = recv_member(i);
                    if (m < members && !acked[m]) { acked[m] = 1; remaining--; inflight--; }
                }
                if (r) last_rx = now_ns();
                else if (next >= sessions && inflight <= 0) break;
                else if (now_ns() - last_rx > STALL_NS) { if (next >= sessions) break; inflight = 0; }
                else if (inflight >= window || next >= sessions) wait_readable(1);
            }
        }
    }
    /* Late answers to retried registrations must not count as answers to polls: wait for quiet. */
    long long quiet_since = now_ns();
    while (now_ns() - quiet_since < 50000000LL) {
        if (batch_recv()) quiet_since = now_ns();
        else wait_readable(5);
    }
    free(sb);
    free(acked);
    return (long long)remaining;
}

/* --- the measured phase -------------------------------------------------------------------- */

#define MAX_SECONDS 600

typedef struct {
    long long sent, send_refused, replies, empty, stalls;
    long long per_second[MAX_SECONDS]; /* answers in each whole second of the measured phase */
    double seconds;
} Counts;

static Counts c; /* big: kept off the stack */

#define FRESH_ENDPOINTS (254u << 16) /* 127.1.0.0 to 127.254.255.255 */
static unsigned char *answered;    /* fresh mode: endpoints that got their answer */

/* Is datagram i an answer (1) or a keep-alive (0)? */
static int is_answer(int i, int fresh) {
    if (!fresh) return rb.msgs[i].msg_len > 0;
    uint32_t m = recv_member(i);
    if (m >= FRESH_ENDPOINTS || answered[m]) return 0;
    answered[m] = 1;
    return 1;
}

static void run(const char *mode, uint32_t sessions, int window, double seconds) {
    SendBatch *sb = calloc(1, sizeof *sb);
    char id[32];
    int fresh = strcmp(mode, "fresh") == 0;
    if (fresh) answered = calloc(FRESH_ENDPOINTS, 1);
    uint64_t k = 0;
    long inflight = 0;
    long long start = now_ns(), end = start + (long long)(seconds * 1e9), last_rx = start;
    while (1) {
        long long t = now_ns();
        if (t >= end) break;
        int want = window - inflight;
        while (want-- > 0 && sb->n < BATCH) {
            if (fresh) {
                batch_add(sb, (uint32_t)(k % FRESH_ENDPOINTS), id, session_id(id, 'f', k));
            } else {
                uint32_t s = (uint32_t)(k % sessions);
                uint32_t m = 2 * s + (uint32_t)((k / sessions) & 1);
                batch_add(sb, m, id, session_id(id, 's', s));
            }
            k++;
        }
        if (sb->n) {
            int asked = sb->n, sent = batch_flush(sb);
            c.sent += sent;
            c.send_refused += asked - sent;
            inflight += sent;
        }
        int r = batch_recv();
        long long second = (t - start) / 1000000000LL;
        for (int i = 0; i < r; i++) {
            if (is_answer(i, fresh)) {
                c.replies++;
                inflight--;
                if (second < MAX_SECONDS) c.per_second[second]++;
            } else c.empty++; /* a keep-alive */
        }
        if (r) last_rx = now_ns();
        else if (now_ns() - last_rx > STALL_NS) { c.stalls++; inflight = 0; last_rx = now_ns(); }
        else if (inflight >= window) wait_readable(1);
    }
    c.seconds = (now_ns() - start) / 1e9;
    /* Late replies still count: drain for 200 ms after the last request. */
    long long drain_end = now_ns() + 200000000LL;
    while (now_ns() < drain_end) {
        int r = batch_recv();
        for (int i = 0; i < r; i++) {
            if (is_answer(i, fresh)) c.replies++;
            else c.empty++;
        }
        if (!r) wait_readable(5);
    }
    free(sb);
    free(answered);
}

/* The kernel's ceiling for one datagram in, one out, per system call pair. */
static int echo_server(int port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0), size = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("loadgen: bind"); return 1; }
    printf("ready %d\n", port);
    fflush(stdout);
    static char buf[65536];
    for (;;) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n >= 0) sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--echo-server") == 0) return echo_server(atoi(argv[2]));
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT poll|fresh|echo SESSIONS WINDOW SECONDS\n", argv[0]);
        return 2;
    }
    const char *mode = argv[3];
    uint32_t sessions = (uint32_t)strtoul(argv[4], NULL, 10);
    int window = atoi(argv[5]);
    double seconds = atof(argv[6]);
    if (sessions == 0 || sessions > 4000000 || window <= 0) {
        fprintf(stderr, "loadgen: SESSIONS must be 1-4000000 and WINDOW positive\n");
        return 2;
    }
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) { fprintf(stderr, "loadgen: bad host\n"); return 2; }
    sock = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1, size = 8 << 20, big = 64 << 20;
    setsockopt(sock, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    /* A keep-alive round at 100k sessions is 200k datagrams in about a second: a big receive
     * buffer (FORCE works for root, past net.core.rmem_max) keeps them from crowding out answers. */
    if (setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) < 0)
        setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (bind(sock, (struct sockaddr *)&any, sizeof any) < 0) { perror("loadgen: bind"); return 1; }

    long long t0 = now_ns(), unregistered = 0;
    if (strcmp(mode, "poll") == 0) unregistered = setup(sessions, window);
    else if (strcmp(mode, "fresh") != 0 && strcmp(mode, "echo") != 0) { fprintf(stderr, "loadgen: bad mode\n"); return 2; }
    double setup_s = (now_ns() - t0) / 1e9;
    printf("{\"setup_seconds\": %.3f, \"unregistered\": %lld}\n", setup_s, unregistered);
    fflush(stdout);
    if (seconds > MAX_SECONDS) seconds = MAX_SECONDS;
    run(mode, sessions, window, seconds);
    printf("{\"mode\": \"%s\", \"sessions\": %u, \"window\": %d, \"setup_seconds\": %.3f, "
           "\"unregistered\": %lld, \"seconds\": %.3f, \"sent\": %lld, \"send_refused\": %lld, "
           "\"replies\": %lld, \"empty\": %lld, \"stalls\": %lld, \"lost\": %lld, \"per_second\": [",
           mode, sessions, window, setup_s, unregistered, c.seconds, c.sent, c.send_refused, c.replies,
           c.empty, c.stalls, c.sent - c.replies);
    for (int i = 0; i < (int)seconds; i++) printf("%s%lld", i ? ", " : "", c.per_second[i]);
    printf("]}\n");
    return 0;
}
