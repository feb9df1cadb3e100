/* WaveNet generation, every step of a block of samples in one native call (arsound/audio/wavenet_fast.py:
 * NativeWaveNet). The same arithmetic as CachedWaveNet.step, on the same fused weights: per layer the dilated conv
 * of the k taps onto the gate conditioning, tanh * sigmoid, the residual into the next layer's input; then all
 * skips in one product, the output network and the draw (mu-law: a 256-way softmax; mol: the logistic mixture).
 *
 * Streams are independent, so `threads` POSIX threads each run a contiguous group of them through the whole block;
 * inside a group every product is a small matrix product [rows, in] @ [in, out] whose register-blocked kernels
 * (6 or 4 streams x 16 outputs, or 1 stream x 64) read each weight once for up to 6 streams. Weights are float32, or
 * bfloat16 (`bf16`: the five big matrices only, widened to float32 as they are read; sums stay float32). Gates use
 * a vectorized exp (Cephes' polynomial, ~1e-7 relative), and so do the softmax exponentials of the draws (the
 * logistic's noise and scale use libm). The draws follow arsound.core.sampling.sample_logits (softmax of
 * logits / temperature, inverse CDF at u * cdf[K-1]; greedy: the first maximum) and
 * DiscretizedLogisticMixture.sample_from / mode. Plain C11 with GCC/Clang vector extensions
 * (-O3 -march=native); compiled at first use by arsound.core.native, loaded with ctypes.
 *
 * Layer l (dilation d_l) keeps its inputs u_l(t) in a ring of Lb_l = (k - 1) d_l + 1 rows per stream; rows never
 * written are zeros (the causal padding). Layouts: table [Kin, R] (mu-law input embedding) or in_w, in_b [R] (mol:
 * the input 1x1 conv of the previous sample's bin centre); wconv: per layer [k R, G] (rows m R + i multiply
 * u(t - m d)[i]); wres: per layer but the last [H + 1, R] (the last row is the bias); wskip [L (H + 1), S];
 * w1 [S, S]; w2 [S, P]; cond: the gate conditioning (conv bias, speaker and local) of step s, layer l, stream b at
 * cond + s cs_t + l cs_l + b cs_b, G floats (a stride 0 repeats); ring: the layers' rings one after another, each
 * [n, Lb_l, R]; prev [n] (the sample before t0; ignored at t0 = 0); u [T, n, U] (NULL when greedy); forced [T, n]
 * (teacher samples instead of draws, or NULL); params_out [T, n, P] (or NULL); out [T, n]. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
typedef uint16_t h8 __attribute__((vector_size(16)));
typedef uint32_t w8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

#if defined(__FMA__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__FMA__)
#define FMA(a, b, c) ((v8)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#else
#define FMA(a, b, c) ((a) * (b) + (c))
#endif

static inline v8 ld(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void st(float *p, v8 v) { memcpy(p, &v, sizeof v); }
static inline v8 ldh(const uint16_t *p) {       /* 8 bfloat16 -> float32: the high half of each word */
#if defined(__AVX2__)
    return (v8)_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16);
#else
    h8 h; memcpy(&h, p, sizeof h);
    return (v8)(__builtin_convertvector(h, w8) << 16);
#endif
}
static inline v8 splat(float x) { return (v8){x, x, x, x, x, x, x, x}; }
static inline v8 pick(i8 mask, v8 a, v8 b) { return (v8)(((i8)a & mask) | ((i8)b & ~mask)); }  /* mask ? a : b */

/* Y[ROWS, 8 NV] += X[ROWS, in] @ W[in, 8 NV] with the accumulators in registers; W's rows are fetched AHEAD rows
 * early (a prefetch past the end is harmless) */
#define AHEAD 8
#if defined(__x86_64__) && defined(__AVX__)
#define IN_REG(v) __asm__("" : "+x"(v))   /* load W once per row, not once per product (the compiler folds it) */
#else
#define IN_REG(v) (void)0
#endif
#define MICRO(NAME, WT, LOAD, ROWS, NV)                                                                          \
    static void NAME(const float *X, int ldx, const WT *W, int in, int ldw, float *Y, int ldy) {                \
        v8 acc[ROWS][NV];                                                                                      \
        for (int r = 0; r < ROWS; r++)                                                                         \
            for (int v = 0; v < NV; v++) acc[r][v] = ld(Y + (size_t)r * ldy + 8 * v);                          \
        for (int i = 0; i < in; i++) {                                                                         \
            v8 w[NV];                                                                                          \
            for (int q = 0; q < 8 * NV; q += 16)                          /* rows of W lie ldw apart */         \
                __builtin_prefetch(W + (size_t)(i + AHEAD) * ldw + q);                                         \
            __builtin_prefetch(W + (size_t)(i + AHEAD) * ldw + 8 * NV - 1);                                    \
            for (int v = 0; v < NV; v++) { w[v] = LOAD(W + (size_t)i * ldw + 8 * v); IN_REG(w[v]); }           \
            for (int r = 0; r < ROWS; r++) {                                                                   \
                v8 x = splat(X[(size_t)r * ldx + i]);                                                          \
                for (int v = 0; v < NV; v++) acc[r][v] = FMA(x, w[v], acc[r][v]);                              \
            }                                                                                                  \
        }                                                                                                      \
        for (int r = 0; r < ROWS; r++)                                                                         \
            for (int v = 0; v < NV; v++) st(Y + (size_t)r * ldy + 8 * v, acc[r][v]);                           \
    }
/* the kernels of one weight type: mk<rows><vectors><f|h> */
#define KERNELS(S, WT, LOAD)                                                                                   \
    MICRO(mk62##S, WT, LOAD, 6, 2) MICRO(mk61##S, WT, LOAD, 6, 1) MICRO(mk42##S, WT, LOAD, 4, 2)              \
    MICRO(mk41##S, WT, LOAD, 4, 1) MICRO(mk18##S, WT, LOAD, 1, 8) MICRO(mk11##S, WT, LOAD, 1, 1)
KERNELS(f, float, ld)
KERNELS(h, uint16_t, ldh)

static inline float wat(const void *W, int bf16, size_t i) {
    if (!bf16) return ((const float *)W)[i];
    uint32_t b = (uint32_t)((const uint16_t *)W)[i] << 16;
    float f; memcpy(&f, &b, sizeof f); return f;
}

/* Y[rows, out] += X[rows, in] @ W[in, out] on rows r0 .. r0 + 6 n6 + 4 n4 (groups of 6, then of 4), column block by
 * column block, so a block of W is read from memory once for all of them */
#define BLOCKS(R6, R4, MK6, MK4, WP, J)                                                                         \
    for (int r = 0; r < R6; r += 6) MK6(X + (size_t)r * ldx, ldx, WP + J, in, out, Y + (size_t)r * ldy + J, ldy);  \
    for (int r = R6; r < R6 + R4; r += 4) MK4(X + (size_t)r * ldx, ldx, WP + J, in, out, Y + (size_t)r * ldy + J, ldy);
#define GROUPS(R6, R4, MK6_2, MK6_1, MK4_2, MK4_1, WP)                                                          \
    {                                                                                                          \
        int j = 0;                                                                                             \
        for (; j + 16 <= out; j += 16) { BLOCKS(R6, R4, MK6_2, MK4_2, WP, j) }                                 \
        for (; j + 8 <= out; j += 8) { BLOCKS(R6, R4, MK6_1, MK4_1, WP, j) }                                   \
        for (; j < out; j++)                                                                                   \
            for (int r = 0; r < R6 + R4; r++) {                                                                \
                float s = 0.0f;                                                                                \
                for (int i = 0; i < in; i++) s += X[(size_t)r * ldx + i] * wat(W, bf16, (size_t)i * out + j);  \
                Y[(size_t)r * ldy + j] += s;                                                                   \
            }                                                                                                  \
    }

/* Y[rows, out] += X[rows, in] @ W[in, out] (row strides ldx, ldy; W dense, float32 or bfloat16): the rows in groups
 * of 6 and 4 (GROUPS), the rest one by one (64 columns at a time) */
static void gemm(const float *X, int ldx, int rows, const void *W, int bf16, int in, int out, float *Y, int ldy) {
    const float *Wf = W; const uint16_t *Wh = W;
    int n6 = rows / 6;                          /* as many 6s as leave a multiple of 4, else as many as fit */
    while (n6 > 0 && (rows - 6 * n6) % 4) n6--;
    if ((rows - 6 * n6) % 4) n6 = rows / 6;
    int r6 = 6 * n6, r4 = (rows - r6) / 4 * 4;
    if (bf16) GROUPS(r6, r4, mk62h, mk61h, mk42h, mk41h, Wh)
    else GROUPS(r6, r4, mk62f, mk61f, mk42f, mk41f, Wf)
    for (int r = r6 + r4; r < rows; r++) {
        const float *x = X + (size_t)r * ldx; float *y = Y + (size_t)r * ldy;
        int j = 0;
        for (; j + 64 <= out; j += 64)
            bf16 ? mk18h(x, ldx, Wh + j, in, out, y + j, ldy) : mk18f(x, ldx, Wf + j, in, out, y + j, ldy);
        for (; j + 8 <= out; j += 8)
            bf16 ? mk11h(x, ldx, Wh + j, in, out, y + j, ldy) : mk11f(x, ldx, Wf + j, in, out, y + j, ldy);
        for (; j < out; j++) {
            float s = 0.0f;
            for (int i = 0; i < in; i++) s += x[i] * wat(W, bf16, (size_t)i * out + j);
            y[j] += s;
        }
    }
}

/* exp(x) for 8 floats: 2^n e^r with |r| <= ln2 / 2 (Cephes expf's polynomial); x clamped to [-87, 88] */
static inline v8 vexp(v8 x) {
    x = pick(x < -87.0f, splat(-87.0f), x);
    x = pick(x > 88.0f, splat(88.0f), x);
    v8 n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;     /* round to nearest */
    v8 r = x - n * 0.693359375f + n * 2.12194440e-4f;
    v8 p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f; p = p * r + 8.3334519073e-3f; p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f; p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    i8 e = (__builtin_convertvector(n, i8) + 127) << 23;
    return p * (v8)e;
}

/* a[j] = tanh(z[j]) * sigmoid(z[H + j]), j < H */
static void gate(const float *z, float *a, int H) {
    int j = 0;
    for (; j + 8 <= H; j += 8) {
        v8 t = 2.0f / (1.0f + vexp(-2.0f * ld(z + j))) - 1.0f;
        st(a + j, t / (1.0f + vexp(-ld(z + H + j))));
    }
    for (; j < H; j++) a[j] = tanhf(z[j]) / (1.0f + expf(-z[H + j]));
}

static int64_t draw(const float *logits, int K, float u, float temperature, int greedy, float *cdfs) {
    int best = 0;
    if (greedy) {
        for (int k = 1; k < K; k++)
            if (logits[k] > logits[best]) best = k;
        return best;
    }
    int k8 = K & ~7, k = 0;
    float m = -INFINITY, sum = 0.0f;
    v8 mv = splat(-INFINITY);
    for (; k < k8; k += 8) { v8 x = ld(logits + k) / temperature; mv = pick(x > mv, x, mv); }
    for (int j = 0; j < 8 && k8; j++) m = mv[j] > m ? mv[j] : m;
    for (; k < K; k++) { float x = logits[k] / temperature; m = x > m ? x : m; }
    for (k = 0; k < k8; k += 8) st(cdfs + k, vexp(ld(logits + k) / temperature - m));
    for (; k < K; k++) cdfs[k] = expf(logits[k] / temperature - m);
    for (k = 0; k < K; k++) sum += cdfs[k];
    float cdf = 0.0f;
    for (k = 0; k < K; k++) { cdf += cdfs[k] / sum; cdfs[k] = cdf; }
    float target = u * cdfs[K - 1];
    for (k = 0; k < K; k++)
        if (cdfs[k] > target) return k;
    return K - 1;
}

/* DiscretizedLogisticMixture: params [logit_probs(M), means(M), log_scales(M)] -> a bin of Kb */
static int64_t draw_mol(const float *p, int M, int Kb, float lsmin, const float *u, float temperature, int greedy,
                        float *cdfs) {
    int64_t c = draw(p, M, greedy ? 0.0f : u[0], temperature, greedy, cdfs);
    float y = p[M + c];
    if (!greedy) {
        float ls = p[2 * M + c] > lsmin ? p[2 * M + c] : lsmin;
        float noise = logf(u[1]) - log1pf(-u[1]);
        float scale = expf(ls) * temperature;
        y = y + scale * noise;
    }
    y = (y < -1.0f ? -1.0f : y > 1.0f ? 1.0f : y) + 1.0f;
    float half = (float)(Kb - 1) / 2.0f;
    float b = y * half;
    b = b + 0.5f;
    return (int64_t)floorf(b);
}

typedef struct {
    int n, T, L, R, G, S, P, k, head, U, M, Kb, bf16;
    const int *dil; const size_t *ring_off;
    const float *table, *in_w, *in_b; const void *wconv, *wres, *wskip, *w1, *w2;
    const float *bskip, *b1, *b2, *cond; int64_t cs_t, cs_l, cs_b;
    float *ring; int64_t t0; int64_t *prev; const float *u; float temperature, lsmin; int greedy;
    const int64_t *forced; float *params_out; int64_t *out;
    int b0, b1_; int status;
} Job;

static void *run_group(void *arg) {
    Job *J = arg;
    int nb = J->b1_ - J->b0, L = J->L, R = J->R, G = J->G, S = J->S, P = J->P, k = J->k, H = G / 2, n = J->n;
    size_t esz = J->bf16 ? 2 : 4, gw = (size_t)L * (H + 1);
    float *z = malloc(sizeof(float) * nb * G), *gates = malloc(sizeof(float) * nb * gw);
    float *sk = malloc(sizeof(float) * nb * S), *sk2 = malloc(sizeof(float) * nb * S);
    float *par = malloc(sizeof(float) * nb * P), *cdfs = malloc(sizeof(float) * (J->Kb > P ? J->Kb : P) + 64);
    if (!z || !gates || !sk || !sk2 || !par || !cdfs) {
        J->status = 1;
        free(z); free(gates); free(sk); free(sk2); free(par); free(cdfs);
        return NULL;
    }
    for (int b = 0; b < nb; b++)
        for (int l = 0; l < L; l++) gates[b * gw + (size_t)l * (H + 1) + H] = 1.0f;   /* carries the bias */
    int64_t *prev = J->prev + J->b0;
    for (int s = 0; s < J->T; s++) {
        int64_t t = J->t0 + s;
        /* u_0(t): the input of the previous sample (zeros at t = 0) */
        int Lb0 = (k - 1) * J->dil[0] + 1;
        for (int b = 0; b < nb; b++) {
            float *u0 = J->ring + J->ring_off[0] + ((size_t)(J->b0 + b) * Lb0 + (size_t)(t % Lb0)) * R;
            if (t == 0) memset(u0, 0, sizeof(float) * R);
            else if (J->head == 0) memcpy(u0, J->table + (size_t)prev[b] * R, sizeof(float) * R);
            else {
                float v = (float)prev[b] * (2.0f / (float)(J->Kb - 1)) - 1.0f;
                for (int i = 0; i < R; i++) u0[i] = J->in_b[i] + v * J->in_w[i];
            }
        }
        for (int l = 0; l < L; l++) {
            int d = J->dil[l], Lb = (k - 1) * d + 1;
            float *rb = J->ring + J->ring_off[l] + (size_t)J->b0 * Lb * R;       /* stream b0's ring */
            size_t ldr = (size_t)Lb * R;
            const float *c = J->cond + s * J->cs_t + l * J->cs_l + J->b0 * J->cs_b;
            for (int b = 0; b < nb; b++) memcpy(z + (size_t)b * G, c + b * J->cs_b, sizeof(float) * G);
            const char *W = (const char *)J->wconv + (size_t)l * k * R * G * esz;
            for (int m = 0; m < k; m++) {
                int64_t tm = t - (int64_t)m * d;
                if (tm < 0) continue;                                           /* a zero row */
                gemm(rb + (size_t)(tm % Lb) * R, (int)ldr, nb, W + (size_t)m * R * G * esz, J->bf16, R, G, z, G);
            }
            for (int b = 0; b < nb; b++) gate(z + (size_t)b * G, gates + b * gw + (size_t)l * (H + 1), H);
            if (l < L - 1) {                                   /* u_{l+1}(t) = u_l(t) + [a, 1] @ wres_l */
                int Ln = (k - 1) * J->dil[l + 1] + 1;
                float *un = J->ring + J->ring_off[l + 1] + ((size_t)J->b0 * Ln + (size_t)(t % Ln)) * R;
                for (int b = 0; b < nb; b++)
                    memcpy(un + (size_t)b * Ln * R, rb + (size_t)b * ldr + (size_t)(t % Lb) * R, sizeof(float) * R);
                gemm(gates + (size_t)l * (H + 1), (int)gw, nb, (const char *)J->wres + (size_t)l * (H + 1) * R * esz,
                     J->bf16, H + 1, R, un, Ln * R);
            }
        }
        for (int b = 0; b < nb; b++) memcpy(sk + (size_t)b * S, J->bskip, sizeof(float) * S);
        gemm(gates, (int)gw, nb, J->wskip, J->bf16, (int)gw, S, sk, S);
        for (size_t j = 0; j < (size_t)nb * S; j++) sk[j] = sk[j] > 0 ? sk[j] : 0;
        for (int b = 0; b < nb; b++) memcpy(sk2 + (size_t)b * S, J->b1, sizeof(float) * S);
        gemm(sk, S, nb, J->w1, J->bf16, S, S, sk2, S);
        for (size_t j = 0; j < (size_t)nb * S; j++) sk2[j] = sk2[j] > 0 ? sk2[j] : 0;
        for (int b = 0; b < nb; b++) memcpy(par + (size_t)b * P, J->b2, sizeof(float) * P);
        gemm(sk2, S, nb, J->w2, J->bf16, S, P, par, P);
        for (int b = 0; b < nb; b++) {
            size_t i = (size_t)s * n + J->b0 + b;
            const float *p = par + (size_t)b * P;
            if (J->params_out) memcpy(J->params_out + i * P, p, sizeof(float) * P);
            const float *u = J->u ? J->u + i * J->U : NULL;
            if (J->forced) J->out[i] = J->forced[i];
            else if (J->head == 0) J->out[i] = draw(p, P, u ? u[0] : 0.0f, J->temperature, J->greedy, cdfs);
            else J->out[i] = draw_mol(p, J->M, J->Kb, J->lsmin, u, J->temperature, J->greedy, cdfs);
            prev[b] = J->out[i];
        }
    }
    free(z); free(gates); free(sk); free(sk2); free(par); free(cdfs);
    return NULL;
}

/* head 0: mu-law (P = K classes, input by `table`); head 1: mol (P = 3 M, Kb bins, input by in_w / in_b, U = 2).
 * Returns 0, or 1 when a buffer or a thread could not be had. */
int wavenet_run(int n, int T, int L, int R, int G, int S, int P, int k, const int *dil, int head, int M, int Kb,
                float lsmin, int bf16, const float *table, const float *in_w, const float *in_b,
                const void *wconv, const void *wres, const void *wskip, const float *bskip,
                const void *w1, const float *b1, const void *w2, const float *b2,
                const float *cond, int64_t cs_t, int64_t cs_l, int64_t cs_b, float *ring, int64_t t0, int64_t *prev,
                const float *u, int U, float temperature, int greedy, const int64_t *forced, float *params_out,
                int64_t *out, int threads) {
    size_t *ring_off = malloc(sizeof(size_t) * L), off = 0;
    if (!ring_off) return 1;
    for (int l = 0; l < L; l++) { ring_off[l] = off; off += (size_t)n * ((k - 1) * dil[l] + 1) * R; }
    if (threads < 1) threads = 1;
    if (threads > n) threads = n;
    Job *jobs = calloc(threads, sizeof(Job));
    pthread_t *tid = calloc(threads, sizeof(pthread_t));
    if (!jobs || !tid) { free(ring_off); free(jobs); free(tid); return 1; }
    int status = 0, started = 0;
    for (int i = 0; i < threads; i++) {
        Job j = {n, T, L, R, G, S, P, k, head, U, M, Kb, bf16, dil, ring_off, table, in_w, in_b, wconv, wres, wskip,
                 w1, w2, bskip, b1, b2, cond, cs_t, cs_l, cs_b, ring, t0, prev, u, temperature, lsmin, greedy,
                 forced, params_out, out, (int)((int64_t)n * i / threads), (int)((int64_t)n * (i + 1) / threads), 0};
        jobs[i] = j;
    }
    for (int i = 1; i < threads; i++) {          /* the caller's thread runs group 0 */
        if (pthread_create(&tid[i], NULL, run_group, &jobs[i])) { status = 1; break; }
        started = i;
    }
    if (!status) run_group(&jobs[0]);
    for (int i = 1; i <= started; i++) pthread_join(tid[i], NULL);
    for (int i = 0; i < threads; i++) status |= jobs[i].status;
    free(ring_off); free(jobs); free(tid);
    return status;
}
