// The forward pass of a user's network at many θ (a loss-landscape view), for networks that are a
// chain of linear maps (Linear, Conv2d, flattens and reshapes) and elementwise activations
// (landscape/engines/graph.py reads the chain from the module and writes it as tables).
//
// Why: evaluating a small CNN at each grid point through torch pays an im2col copy and a
// kernel launch per layer and point; its 3 × 3 convolutions with a few channels run far below
// the arithmetic's speed in float64. Every such layer is a linear map from the input features
// of one sample to its output features: output j is b_j + Σ θ[w] · in[i] over its taps (i, w).
// Written as tap tables, the whole network is one loop over features with a block of points in
// the vector lanes (as the fused MLP step), every activation of the block in L1/L2.
//
// The losses and accuracies of a block are fused_step.cpp's (block_losses, block_correct, its
// lane math): included, so the closed forms are written once. Compile-time constants as there;
// D is unused here (1).
#include "fused_step.cpp"

// layers: nlayer rows of 8 int32 — in_off, out_off (feature offsets in the block's buffer),
// n_out, act (the activations after the map, `activate`), row (this layer's first output among
// all layers'), mode, w, channels (graph.py's Layer): mode 0, output j reads its own taps
// (input feature, θ index); d > 0, a dense layer on d inputs, output j = b_j + Σ_i θ[w + j·d + i]
// in[i]; −K, `channels` channels share position p's taps (input feature, weight offset) and
// channel o's weights start at θ[w + o·K], output (o, p) at o·P + p (a convolution);
// rowptr: for every output, where its taps begin in taps (and one past the last); bias: its
// bias's θ index (−1 none; a convolution's outputs of one channel share one); taps: (input
// feature, θ index) pairs.
struct Graph {
    int nlayer, nfeat, d, out_off;
    const int32_t *layers, *rowptr, *bias, *taps;
};

// kind: the activations applied in turn, one base-3 digit each, lowest first (1 relu, 2 tanh).
static inline vec activate(vec z, int kind) {
    for (; kind; kind /= 3) z = kind % 3 == 1 ? (z < 0 ? vec{} : z) : vtanh(z);  // relu: NaN passes, as torch's
    return z;
}

// The logits f (NC × NV) of the block of points at p0 under θ th; buf: nfeat × NV vectors.
static inline void graph_block(const Graph& g, const T* XT, int Pp, int p0, const T* th, vec* buf,
                               vec (*f)[NV]) {
    for (int i = 0; i < g.d; ++i)
        for (int v = 0; v < NV; ++v) buf[i * NV + v] = load(XT + (size_t)i * Pp + p0 + v * L);
    for (int k = 0; k < g.nlayer; ++k) {
        const int32_t* ly = g.layers + 8 * k;
        const int in_off = ly[0], out_off = ly[1], n_out = ly[2], kind = ly[3], row = ly[4], d = ly[5];
        const vec* in = buf + (size_t)in_off * NV;
        vec* out = buf + (size_t)out_off * NV;
        int j = 0;
        if (d > 0) {  // dense: four outputs at a time, each input vector loaded once for the four
            const T* W = th + ly[6];
            for (; j + 4 <= n_out; j += 4) {
                vec z[4][NV];
                for (int q = 0; q < 4; ++q) {
                    const int bi = g.bias[row + j + q];
                    for (int v = 0; v < NV; ++v) z[q][v] = splat(bi >= 0 ? th[bi] : T(0));
                }
                const T *w0 = W + (size_t)j * d, *w1 = w0 + d, *w2 = w1 + d, *w3 = w2 + d;
                for (int i = 0; i < d; ++i) {
                    const vec* x = in + (size_t)i * NV;
                    for (int v = 0; v < NV; ++v) {
                        z[0][v] += w0[i] * x[v];
                        z[1][v] += w1[i] * x[v];
                        z[2][v] += w2[i] * x[v];
                        z[3][v] += w3[i] * x[v];
                    }
                }
                for (int q = 0; q < 4; ++q)
                    for (int v = 0; v < NV; ++v) out[(j + q) * NV + v] = activate(z[q][v], kind);
            }
            for (; j < n_out; ++j) {
                const int bi = g.bias[row + j];
                vec z[NV];
                for (int v = 0; v < NV; ++v) z[v] = splat(bi >= 0 ? th[bi] : T(0));
                const T* wj = W + (size_t)j * d;
                for (int i = 0; i < d; ++i)
                    for (int v = 0; v < NV; ++v) z[v] += wj[i] * in[(size_t)i * NV + v];
                for (int v = 0; v < NV; ++v) out[j * NV + v] = activate(z[v], kind);
            }
            continue;
        }
        if (d < 0) {  // channels sharing a position's taps: four channels a tap, the input loaded once
            const int K = -d, O = ly[7], P = n_out / O;
            const T* W = th + ly[6];
            for (int p = 0; p < P; ++p) {
                const int t0 = g.rowptr[row + p], t1 = g.rowptr[row + p + 1];
                for (int o = 0; o < O; o += 4) {
                    const int nq = O - o < 4 ? O - o : 4;
                    vec z[4][NV];
                    for (int q = 0; q < nq; ++q) {
                        const int bi = g.bias[row + (o + q) * P + p];
                        for (int v = 0; v < NV; ++v) z[q][v] = splat(bi >= 0 ? th[bi] : T(0));
                    }
                    const T* Wo = W + (size_t)o * K;
                    if (nq == 4)
                        for (int t = t0; t < t1; ++t) {
                            const vec* x = in + (size_t)g.taps[2 * t] * NV;
                            const T* wt = Wo + g.taps[2 * t + 1];
                            for (int v = 0; v < NV; ++v) {
                                z[0][v] += wt[0] * x[v];
                                z[1][v] += wt[K] * x[v];
                                z[2][v] += wt[2 * K] * x[v];
                                z[3][v] += wt[3 * K] * x[v];
                            }
                        }
                    else
                        for (int t = t0; t < t1; ++t) {
                            const vec* x = in + (size_t)g.taps[2 * t] * NV;
                            const T* wt = Wo + g.taps[2 * t + 1];
                            for (int q = 0; q < nq; ++q)
                                for (int v = 0; v < NV; ++v) z[q][v] += wt[q * K] * x[v];
                        }
                    for (int q = 0; q < nq; ++q)
                        for (int v = 0; v < NV; ++v) out[((o + q) * P + p) * NV + v] = activate(z[q][v], kind);
                }
            }
            continue;
        }
        for (; j < n_out; ++j) {
            vec z[NV];
            const int bi = g.bias[row + j];
            const T b = bi >= 0 ? th[bi] : T(0);
            for (int v = 0; v < NV; ++v) z[v] = splat(b);
            for (int t = g.rowptr[row + j]; t < g.rowptr[row + j + 1]; ++t) {
                const vec* x = in + (size_t)g.taps[2 * t] * NV;
                const T w = th[g.taps[2 * t + 1]];
                for (int v = 0; v < NV; ++v) z[v] += w * x[v];
            }
            for (int v = 0; v < NV; ++v) out[j * NV + v] = activate(z[v], kind);
        }
    }
    for (int c = 0; c < NC; ++c)
        for (int v = 0; v < NV; ++v) f[c][v] = buf[(size_t)(g.out_off + c) * NV + v];
}

// F, the static loss and the training accuracy (metrics (3, R)) of each θ row with its Γ G (R, NC),
// and with XTv the validation accuracy (val (R,)): forward only. A θ that is not finite reads NaN.
extern "C" int landscape_graph_forward(int R, int n, int nlayer, int nfeat, int d, int out_off,
                                       const int32_t* layers, const int32_t* rowptr, const int32_t* bias,
                                       const int32_t* taps, int P,
                                       int Pp, const T* XT, const int32_t* y, const T* G, const T* theta,
                                       T* metrics, int Pv, int Ppv, const T* XTv, const int32_t* yv, T* val) {
    const Graph g{nlayer, nfeat, d, out_off, layers, rowptr, bias, taps};
    vec* buf = new (std::nothrow) vec[(size_t)nfeat * NV];  // 64-byte aligned: vec's own alignment
    if (!buf) return 1;
    const T inv = T(1.0 / P), nan = std::numeric_limits<T>::quiet_NaN();
    for (int r = 0; r < R; ++r) {
        const T* th = theta + (size_t)r * n;
        if (!all_finite(th, n)) {
            for (int j = 0; j < 3; ++j) metrics[(size_t)j * R + r] = nan;
            if (XTv) val[r] = nan;
            continue;
        }
        const T* Gs = G + (size_t)r * NC;
        double sums[3] = {0, 0, 0};
        for (int p0 = 0; p0 < Pp; p0 += B) {
            vec f[NC][NV];
            graph_block(g, XT, Pp, p0, th, buf, f);
            block_losses(f, p0, P, y, Gs, inv, sums);
        }
        metrics[r] = T(sums[0] / P);
        metrics[R + r] = T(sums[1] / P);
        metrics[2 * R + r] = T(sums[2] / P);
        if (!XTv) continue;
        long correct = 0;
        for (int p0 = 0; p0 < Ppv; p0 += B) {
            vec f[NC][NV];
            graph_block(g, XTv, Ppv, p0, th, buf, f);
            correct += block_correct(f, p0, Pv, yv);
        }
        val[r] = T(correct) / T(Pv);
    }
    delete[] buf;
    return 0;
}
