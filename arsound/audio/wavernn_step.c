/* WaveRNN generation, the whole per-sample step in one native call per block of samples (arsound/audio/wavernn.py).
 *
 * For each sample t and stream b: the coarse half of the GRU from h[t-1] and [c[t-1], f[t-1], 0, cond[t]], its
 * output network and the draw of c[t]; then the fine half with c[t] in the input, its output network and the draw
 * of f[t]; h[t] = [h_c, h_f]. Plain C, float32; the weights come transposed ([in, out], see matmat) so every
 * product is a run of vectorized axpys (-O3 -march=native). Draws as arsound.core.sampling.sample_logits: softmax(logits / temperature), inverse CDF at u * cdf[K-1]; greedy: the
 * first maximum. Compiled at first use by arsound.core.native (g++/gcc), loaded with ctypes.
 *
 * Layouts: cond [T, n, Cc]; u [T, 2, n] (coarse, fine; NULL when greedy); forced [T, 2, n] (teacher bytes instead of
 * draws, or NULL); logits_out [T, 2, n, 256] (or NULL); out [T, 2, n]; h [n, H] and prev [n, 2] carried in/out. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define K 256

/* Y[b, :] = bias + X[b, :] @ Wt for n rows of X, Wt the weight transposed ([cols, rows]): one axpy of a weight
 * row per input element and stream, so the inner loop runs along contiguous memory with no horizontal sums (the
 * compiler vectorizes it), and each weight row is read once for every stream. */
static void matmat(const float *Wt, const float *bias, const float *X, float *Y, int rows, int cols, int n) {
    for (int b = 0; b < n; b++) memcpy(Y + (size_t)b * rows, bias, sizeof(float) * rows);
    for (int c = 0; c < cols; c++) {
        const float *w = Wt + (size_t)c * rows;
        for (int b = 0; b < n; b++) {
            float xv = X[(size_t)b * cols + c];
            float *y = Y + (size_t)b * rows;
            for (int r = 0; r < rows; r++) y[r] += xv * w[r];
        }
    }
}

static float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

/* One half of the GRU for n streams: gi = W_ih x + b_ih, gh = W_hh h + b_hh (rows r, z, n of this half);
 * off: where this half sits in h (0 coarse, H2 fine); out[n, H2]. */
static void gru_half(const float *wi, const float *wh, const float *bi, const float *bh, const float *x,
                     const float *h, int off, int n, int In, int H, int H2, float *gi, float *gh, float *out) {
    matmat(wi, bi, x, gi, 3 * H2, In, n);
    matmat(wh, bh, h, gh, 3 * H2, H, n);
    for (int b = 0; b < n; b++) {
        const float *a = gi + (size_t)b * 3 * H2, *c = gh + (size_t)b * 3 * H2, *hh = h + (size_t)b * H + off;
        for (int j = 0; j < H2; j++) {
            float r = sigmoidf(a[j] + c[j]);
            float z = sigmoidf(a[H2 + j] + c[H2 + j]);
            float e = tanhf(a[2 * H2 + j] + r * c[2 * H2 + j]);
            out[(size_t)b * H2 + j] = (1.0f - z) * e + z * hh[j];
        }
    }
}

/* relu(W1 x + b1) -> W2 . + b2 for n streams: logits[n, K]. */
static void head(const float *w1, const float *b1, const float *w2, const float *b2, const float *x, int n, int H2,
                 int fc, float *hid, float *logits) {
    matmat(w1, b1, x, hid, fc, H2, n);
    for (size_t j = 0; j < (size_t)n * fc; j++) hid[j] = hid[j] > 0 ? hid[j] : 0;
    matmat(w2, b2, hid, logits, K, fc, n);
}

static int64_t draw(const float *logits, float u, float temperature, int greedy) {
    int best = 0;
    if (greedy) {
        for (int k = 1; k < K; k++)
            if (logits[k] > logits[best]) best = k;
        return best;
    }
    float m = -INFINITY, p[K], sum = 0.0f;
    for (int k = 0; k < K; k++) m = fmaxf(m, logits[k] / temperature);
    for (int k = 0; k < K; k++) { p[k] = expf(logits[k] / temperature - m); sum += p[k]; }
    float cdf = 0.0f, cdfs[K];
    for (int k = 0; k < K; k++) { cdf += p[k] / sum; cdfs[k] = cdf; }
    float target = u * cdfs[K - 1];
    for (int k = 0; k < K; k++)
        if (cdfs[k] > target) return k;
    return K - 1;
}

int wavernn_run(int n, int T, int H, int In, int fc,
                const float *wic, const float *whc, const float *bic, const float *bhc,
                const float *wif, const float *whf, const float *bif, const float *bhf,
                const float *o1w, const float *o1b, const float *o2w, const float *o2b,
                const float *o3w, const float *o3b, const float *o4w, const float *o4b,
                const float *cond, float *h, int64_t *prev, const float *u, float temperature, int greedy,
                const int64_t *forced, float *logits_out, int64_t *out) {
    int H2 = H / 2, Cc = In - 3;
    size_t N = (size_t)n;
    float *x = malloc(sizeof(float) * N * In), *gi = malloc(sizeof(float) * N * 3 * H2);
    float *gh = malloc(sizeof(float) * N * 3 * H2), *hc = malloc(sizeof(float) * N * H2);
    float *hf = malloc(sizeof(float) * N * H2), *hid = malloc(sizeof(float) * N * fc);
    float *logits = malloc(sizeof(float) * N * K);
    if (!x || !gi || !gh || !hc || !hf || !hid || !logits) return 1;
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < n; b++) {          /* inputs: [c[t-1], f[t-1], 0, cond[t]] */
            float *xb = x + (size_t)b * In;
            xb[0] = (float)prev[2 * b] / 127.5f - 1.0f;
            xb[1] = (float)prev[2 * b + 1] / 127.5f - 1.0f;
            xb[2] = 0.0f;
            if (Cc > 0) memcpy(xb + 3, cond + ((size_t)t * n + b) * Cc, sizeof(float) * Cc);
        }
        /* coarse half, its output network, the draw of c[t] */
        gru_half(wic, whc, bic, bhc, x, h, 0, n, In, H, H2, gi, gh, hc);
        head(o1w, o1b, o2w, o2b, hc, n, H2, fc, hid, logits);
        for (int b = 0; b < n; b++) {
            size_t i = ((size_t)t * 2 + 0) * n + b;
            if (logits_out) memcpy(logits_out + i * K, logits + (size_t)b * K, sizeof(float) * K);
            out[i] = forced ? forced[i] : draw(logits + (size_t)b * K, u ? u[i] : 0.0f, temperature, greedy);
            x[(size_t)b * In + 2] = (float)out[i] / 127.5f - 1.0f;   /* the fine half sees c[t] */
        }
        /* fine half, its output network, the draw of f[t] */
        gru_half(wif, whf, bif, bhf, x, h, H2, n, In, H, H2, gi, gh, hf);
        head(o3w, o3b, o4w, o4b, hf, n, H2, fc, hid, logits);
        for (int b = 0; b < n; b++) {
            size_t i = ((size_t)t * 2 + 0) * n + b, j = ((size_t)t * 2 + 1) * n + b;
            if (logits_out) memcpy(logits_out + j * K, logits + (size_t)b * K, sizeof(float) * K);
            out[j] = forced ? forced[j] : draw(logits + (size_t)b * K, u ? u[j] : 0.0f, temperature, greedy);
            memcpy(h + (size_t)b * H, hc + (size_t)b * H2, sizeof(float) * H2);
            memcpy(h + (size_t)b * H + H2, hf + (size_t)b * H2, sizeof(float) * H2);
            prev[2 * b] = out[i];
            prev[2 * b + 1] = out[j];
        }
    }
    free(x); free(gi); free(gh); free(hc); free(hf); free(hid); free(logits);
    return 0;
}
