/* keccak-256 (Ethereum's: pad 0x01 ... 0x80, not SHA3's 0x06) for FLockChain's bulk
 * hashing: one buffer, or many independent buffers side by side (multi-buffer: Keccak-f on
 * 4 states with AVX2, 8 with AVX-512F, one 64-bit state lane per SIMD lane).
 *
 * Why: protocol 4 hashes every 4 MiB chunk of an update separately, so chunks are
 * independent streams; a multi-buffer permutation does 4-8 of them for little more than
 * the cost of one. Digests are consensus: tests compare every path with pycryptodome.
 *
 * Runtime dispatch (__builtin_cpu_supports), portable scalar fallback; built by
 * `make native` (part of `make install`) into native/build/libflockkeccak.so and loaded
 * with ctypes by state_machine/keccak_native.py (ctypes releases the GIL during calls).
 * Little-endian lanes are loaded with memcpy (any alignment); big-endian hosts byte-swap. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RATE 136
#define RATE_WORDS 17
#define MAX_LANES 8

static const uint64_t RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};
/* rotation of lane (x, y), index x + 5*y */
static const int RHO[25] = {0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43,
                            25, 39, 41, 45, 15, 21, 8, 18, 2, 61, 56, 14};

/* (64 - n) & 63 keeps n = 0 defined: x << 0 | x >> 0 == x */
#define ROL64(x, n) (((x) << (n)) | ((x) >> ((64 - (n)) & 63)))

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

typedef uint64_t v4u64 __attribute__((vector_size(32)));
typedef uint64_t v8u64 __attribute__((vector_size(64)));

#define PERM_NAME perm1
#define PERM_T uint64_t
#define PERM_ATTR
#include "keccak_perm.inc"

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86_SIMD 1
#define PERM_NAME perm4_avx2
#define PERM_T v4u64
#define PERM_ATTR __attribute__((target("avx2")))
#include "keccak_perm.inc"
#define PERM_NAME perm4_avx512
#define PERM_T v4u64
#define PERM_ATTR __attribute__((target("avx512f,avx512vl")))
#include "keccak_perm.inc"
#define PERM_NAME perm8_avx512
#define PERM_T v8u64
#define PERM_ATTR __attribute__((target("avx512f")))
#include "keccak_perm.inc"

#define K_NAME absorb4_avx2
#define K_N 4
#define K_T v4u64
#define K_ATTR __attribute__((target("avx2")))
#define K_PERM perm4_avx2
#include "keccak_kernel.inc"
#define K_NAME absorb4_avx512
#define K_N 4
#define K_T v4u64
#define K_ATTR __attribute__((target("avx512f,avx512vl")))
#define K_PERM perm4_avx512
#include "keccak_kernel.inc"
#define K_NAME absorb8_avx512
#define K_N 8
#define K_T v8u64
#define K_ATTR __attribute__((target("avx512f")))
#define K_PERM perm8_avx512
#include "keccak_kernel.inc"
#endif

/* A running keccak-256: the permutation state, the bytes of a partial block. */
typedef struct {
    uint64_t s[25];
    uint8_t buf[RATE];
    uint32_t buflen;
    uint32_t pad_;
} flk_state;

typedef void (*absorb_fn)(uint64_t *const *st, const uint8_t *const *in, size_t blocks);

/* 0: not yet chosen; else 1 (scalar), 4 or 8: the widest kernel absorb_many uses. */
static int g_lanes;
static absorb_fn g_k4, g_k8;
/* fewest lanes worth a kernel call: 1 where the AVX-512 4-lane kernel beats the scalar
 * permutation even with three spare lanes (one state: 2.2 vs 3.7 ms/MiB on Zen 4) */
static int g_min_live = 2;

static void choose(int want)
{
    int lanes = 1;
    g_k4 = g_k8 = NULL;
    g_min_live = 2;
#ifdef HAVE_X86_SIMD
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2");
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    if (want != 1 && avx512) {
        g_k4 = (absorb_fn)absorb4_avx512;
        g_k8 = (absorb_fn)absorb8_avx512;
        lanes = want == 4 ? 4 : 8;
        g_min_live = 1;
    } else if (want != 1 && avx2) {
        g_k4 = (absorb_fn)absorb4_avx2;
        lanes = 4;
    }
    if (want == 42 && avx2) {  /* the AVX2 kernel even where AVX-512 exists (tests, bench) */
        g_k4 = (absorb_fn)absorb4_avx2;
        g_k8 = NULL;
        lanes = 4;
        g_min_live = 2;
    }
    if (lanes == 4) g_k8 = NULL;
#else
    (void)want;
#endif
    g_lanes = lanes;
}

/* The widest multi-buffer kernel in use: 8, 4 or 1 (scalar only). */
int flk_lanes(void)
{
    if (!g_lanes) choose(0);
    return g_lanes;
}

/* Restrict the kernels (tests and benchmarks): 0 = best, 1 = scalar, 4 = at most 4 lanes,
 * 42 = the AVX2 4-lane kernel even on an AVX-512 CPU. Returns the lanes now in use.
 * Not thread-safe against concurrent hashing: call it before. */
int flk_set_lanes(int want)
{
    choose(want);
    return g_lanes;
}

size_t flk_state_size(void) { return sizeof(flk_state); }

void flk_init(flk_state *st) { memset(st, 0, sizeof *st); }

static inline void xor_block(uint64_t *s, const uint8_t *p)
{
    for (int i = 0; i < RATE_WORDS; i++) s[i] ^= load64(p + 8 * i);
}

/* Absorb into one state: complete its partial block, full blocks, keep the tail. */
static void absorb1(flk_state *st, const uint8_t *p, size_t n)
{
    if (st->buflen) {
        size_t take = RATE - st->buflen < n ? RATE - st->buflen : n;
        memcpy(st->buf + st->buflen, p, take);
        st->buflen += (uint32_t)take;
        p += take;
        n -= take;
        if (st->buflen < RATE) return;
        xor_block(st->s, st->buf);
        perm1(st->s);
        st->buflen = 0;
    }
    for (; n >= RATE; p += RATE, n -= RATE) {
        xor_block(st->s, p);
        perm1(st->s);
    }
    memcpy(st->buf, p, n);
    st->buflen = (uint32_t)n;
}

static void absorb_group(flk_state **st, const uint8_t **p, size_t *n, int count);

void flk_absorb(flk_state *st, const uint8_t *p, size_t n)
{
    if (!g_lanes) choose(0);
    absorb_group(&st, &p, &n, 1);
}

/* Digest of the bytes absorbed so far; the state is left as it was (copy semantics). */
void flk_digest(const flk_state *st, uint8_t out[32])
{
    uint64_t s[25];
    uint8_t last[RATE];
    memcpy(s, st->s, sizeof s);
    memset(last, 0, RATE);
    memcpy(last, st->buf, st->buflen);
    last[st->buflen] ^= 0x01;
    last[RATE - 1] ^= 0x80;
    xor_block(s, last);
    perm1(s);
    for (int i = 0; i < 4; i++) {
        uint64_t w = s[i];
        for (int b = 0; b < 8; b++) out[8 * i + b] = (uint8_t)(w >> (8 * b));
    }
}

/* Lanes [0, n) of one group (n <= MAX_LANES): the widest kernel over every lane that still
 * has a full block, for as many blocks as the shortest of them has, until fewer than two
 * lanes are left; those finish on the scalar path. Spare kernel lanes hash a copy of lane
 * 0's input into a scratch state (their result is dropped). */
static void absorb_group(flk_state **st, const uint8_t **p, size_t *n, int count)
{
    uint64_t scratch[MAX_LANES][25];
    for (int j = 0; j < count; j++) {  /* complete partial blocks first */
        if (st[j]->buflen && n[j]) {
            size_t take = RATE - st[j]->buflen < n[j] ? RATE - st[j]->buflen : n[j];
            absorb1(st[j], p[j], take);
            p[j] += take;
            n[j] -= take;
        }
    }
    for (;;) {
        int idx[MAX_LANES], live = 0;
        size_t blocks = SIZE_MAX;
        for (int j = 0; j < count; j++) {
            if (n[j] >= RATE) {
                idx[live++] = j;
                if (n[j] / RATE < blocks) blocks = n[j] / RATE;
            }
        }
        if (live < g_min_live || !g_k4) break;
        absorb_fn k = (live > 4 && g_k8) ? g_k8 : g_k4;
        int width = k == g_k8 ? 8 : 4;
        if (live > width) live = width;
        uint64_t *sp[MAX_LANES];
        const uint8_t *ip[MAX_LANES];
        for (int t = 0; t < width; t++) {
            if (t < live) {
                sp[t] = st[idx[t]]->s;
                ip[t] = p[idx[t]];
            } else {
                memset(scratch[t], 0, sizeof scratch[t]);
                sp[t] = scratch[t];
                ip[t] = p[idx[0]];
            }
        }
        k(sp, ip, blocks);
        for (int t = 0; t < live; t++) {
            p[idx[t]] += blocks * RATE;
            n[idx[t]] -= blocks * RATE;
        }
    }
    for (int j = 0; j < count; j++) absorb1(st[j], p[j], n[j]);
}

/* Absorb in[j][0:len[j]] into st[j] for every j < count (distinct states), lanes grouped
 * by MAX_LANES. The result is the same as count calls of flk_absorb. */
void flk_absorb_many(flk_state **st, const uint8_t **in, const size_t *len, size_t count)
{
    if (!g_lanes) choose(0);
    for (size_t off = 0; off < count; off += MAX_LANES) {
        int g = count - off < MAX_LANES ? (int)(count - off) : MAX_LANES;
        const uint8_t *p[MAX_LANES];
        size_t n[MAX_LANES];
        for (int j = 0; j < g; j++) {
            p[j] = in[off + j];
            n[j] = len[off + j];
        }
        absorb_group(st + off, p, n, g);
    }
}

/* keccak-256 of one buffer. */
void flk_keccak256(const uint8_t *p, size_t n, uint8_t out[32])
{
    flk_state st;
    flk_init(&st);
    flk_absorb(&st, p, n);
    flk_digest(&st, out);
}

/* keccak-256 of count independent buffers (out: count * 32 bytes), side by side. */
void flk_keccak256_many(const uint8_t **in, const size_t *len, size_t count, uint8_t *out)
{
    for (size_t off = 0; off < count; off += MAX_LANES) {
        size_t g = count - off < MAX_LANES ? count - off : MAX_LANES;
        flk_state st[MAX_LANES];
        flk_state *sp[MAX_LANES];
        for (size_t j = 0; j < g; j++) {
            flk_init(&st[j]);
            sp[j] = &st[j];
        }
        flk_absorb_many(sp, in + off, len + off, g);
        for (size_t j = 0; j < g; j++) flk_digest(&st[j], out + 32 * (off + j));
    }
}
