/* WaveNet generation (mu-law head), every step of a block of samples in one native call
 * (arsound/audio/wavenet_fast.py: NativeWaveNet). The same arithmetic as CachedWaveNet.step, on the same fused
 * weights: per layer the dilated conv of the k taps onto the gate conditioning, tanh * sigmoid, the residual into
 * the next layer's input; then all skips in one product, the output network and the draw. Plain C, float32; every
 * matrix is [in, out] so each product is a run of vectorized axpys (-O3 -march=native). Draws as
 * arsound.core.sampling.sample_logits (softmax of logits / temperature, inverse CDF at u * cdf[K-1]; greedy: the
 * first maximum). Compiled at first use by arsound.core.native, loaded with ctypes.
 *
 * Layer l (dilation d_l) keeps its inputs u_l(t) in a ring of Lb_l = (k - 1) d_l + 1 rows per stream; rows never
 * written are zeros (the causal padding). Layouts: table [K, R]; wconv: per layer [k R, G] (rows m R + i multiply
 * u(t - m d)[i]); wres: per layer but the last [H + 1, R] (the last row is the bias); wskip [L (H + 1), S];
 * w1 [S, S]; w2 [S, K]; cond [T, L, n, G] (conv bias, speaker and local conditioning of every gate); ring: the
 * layers' rings one after another, each [n, Lb_l, R]; prev [n] (the sample before t0; ignored at t0 = 0);
 * u [T, n] (NULL when greedy); forced [T, n] (teacher samples instead of draws, or NULL); logits_out [T, n, K]. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* y[out] += x[in] @ W[in, out] */
static void axpys(const float *W, const float *x, float *y, int in, int out) {
    for (int i = 0; i < in; i++) {
        float xv = x[i];
        const float *w = W + (size_t)i * out;
        for (int j = 0; j < out; j++) y[j] += xv * w[j];
    }
}

static int64_t draw(const float *logits, int K, float u, float temperature, int greedy, float *cdfs) {
    int best = 0;
    if (greedy) {
        for (int k = 1; k < K; k++)
            if (logits[k] > logits[best]) best = k;
        return best;
    }
    float m = -INFINITY, sum = 0.0f;
    for (int k = 0; k < K; k++) m = fmaxf(m, logits[k] / temperature);
    for (int k = 0; k < K; k++) { cdfs[k] = expf(logits[k] / temperature - m); sum += cdfs[k]; }
    float cdf = 0.0f;
    for (int k = 0; k < K; k++) { cdf += cdfs[k] / sum; cdfs[k] = cdf; }
    float target = u * cdfs[K - 1];
    for (int k = 0; k < K; k++)
        if (cdfs[k] > target) return k;
    return K - 1;
}

int wavenet_run(int n, int T, int L, int R, int G, int S, int K, int k, const int *dil,
                const float *table, const float *wconv, const float *wres, const float *wskip, const float *bskip,
                const float *w1, const float *b1, const float *w2, const float *b2, const float *cond,
                float *ring, int64_t t0, int64_t *prev, const float *u, float temperature, int greedy,
                const int64_t *forced, float *logits_out, int64_t *out) {
    int H = G / 2;
    size_t *ring_off = malloc(sizeof(size_t) * L), off = 0;
    float *z = malloc(sizeof(float) * G), *gate = malloc(sizeof(float) * L * (H + 1));
    float *sk = malloc(sizeof(float) * S), *sk2 = malloc(sizeof(float) * S), *logits = malloc(sizeof(float) * K);
    float *cdfs = malloc(sizeof(float) * K), *zero = calloc(R, sizeof(float));
    if (!ring_off || !z || !gate || !sk || !sk2 || !logits || !cdfs || !zero) return 1;
    for (int l = 0; l < L; l++) { ring_off[l] = off; off += (size_t)n * ((k - 1) * dil[l] + 1) * R; }
    for (int s = 0; s < T; s++) {
        int64_t t = t0 + s;
        for (int b = 0; b < n; b++) {
            /* u_0(t): the embedding of the previous sample (zeros at t = 0) */
            int Lb0 = (k - 1) * dil[0] + 1;
            float *u0 = ring + ring_off[0] + ((size_t)b * Lb0 + (size_t)(t % Lb0)) * R;
            if (t > 0) memcpy(u0, table + (size_t)prev[b] * R, sizeof(float) * R);
            else memset(u0, 0, sizeof(float) * R);
            for (int l = 0; l < L; l++) {
                int d = dil[l], Lb = (k - 1) * d + 1;
                float *rb = ring + ring_off[l] + (size_t)b * Lb * R;
                memcpy(z, cond + (((size_t)s * L + l) * n + b) * G, sizeof(float) * G);
                const float *W = wconv + (size_t)l * k * R * G;
                for (int m = 0; m < k; m++) {
                    int64_t tm = t - (int64_t)m * d;
                    const float *um = tm >= 0 ? rb + (size_t)(tm % Lb) * R : zero;
                    axpys(W + (size_t)m * R * G, um, z, R, G);
                }
                float *a = gate + (size_t)l * (H + 1);
                for (int j = 0; j < H; j++) a[j] = tanhf(z[j]) / (1.0f + expf(-z[H + j]));
                a[H] = 1.0f;
                if (l < L - 1) {                 /* u_{l+1}(t) = u_l(t) + [a, 1] @ wres_l */
                    int Ln = (k - 1) * dil[l + 1] + 1;
                    float *un = ring + ring_off[l + 1] + ((size_t)b * Ln + (size_t)(t % Ln)) * R;
                    memcpy(un, rb + (size_t)(t % Lb) * R, sizeof(float) * R);
                    axpys(wres + (size_t)l * (H + 1) * R, a, un, H + 1, R);
                }
            }
            memcpy(sk, bskip, sizeof(float) * S);
            axpys(wskip, gate, sk, L * (H + 1), S);
            for (int j = 0; j < S; j++) sk[j] = sk[j] > 0 ? sk[j] : 0;
            memcpy(sk2, b1, sizeof(float) * S);
            axpys(w1, sk, sk2, S, S);
            for (int j = 0; j < S; j++) sk2[j] = sk2[j] > 0 ? sk2[j] : 0;
            memcpy(logits, b2, sizeof(float) * K);
            axpys(w2, sk2, logits, S, K);
            size_t i = (size_t)s * n + b;
            if (logits_out) memcpy(logits_out + i * K, logits, sizeof(float) * K);
            out[i] = forced ? forced[i] : draw(logits, K, u ? u[i] : 0.0f, temperature, greedy, cdfs);
        }
        for (int b = 0; b < n; b++) prev[b] = out[(size_t)s * n + b];
    }
    free(ring_off); free(z); free(gate); free(sk); free(sk2); free(logits); free(cdfs); free(zero);
    return 0;
}
