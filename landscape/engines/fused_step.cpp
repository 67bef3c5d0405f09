// Full-batch training steps of R one-hidden-layer MLPs, fused (landscape/fused.py builds it): gradient
// descent, heavy-ball and Nesterov momentum, RMSProp and Adam.
//
// Why: the torch step streams every replica's (width × P) activations through memory about eight
// times a step and pays a kernel launch per operation; here a block of B points goes forward,
// through the loss and backward while its activations sit in L1, the gradient is accumulated in
// B-lane vectors and θ is updated in place. Every replica and every step is computed alone, in
// the same order, so the result does not depend on how the steps are cut or the replicas batched.
//
// Compile-time constants (-D): T (double/float), D (input dim), NC (classes), ACT (0 relu,
// 1 tanh), LOSS (0 ce, 1 dce, 2 mse, 3 dmse1, 4 dmse2), NV (vectors of points per block).
// θ per replica, as landscape.model.MLPSpec lays it out: W1 (D, w), b1 (w), W2 (w, NC), b2 (NC).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>

#ifndef T
#define T double
#endif
#ifndef NV
#define NV 2
#endif

constexpr int L = 64 / sizeof(T);  // lanes of one 64-byte vector: 8 doubles or 16 floats on every ISA
constexpr int B = NV * L;          // points per block
typedef T vec __attribute__((vector_size(64)));
typedef T uvec __attribute__((vector_size(64), aligned(sizeof(T))));

static inline vec load(const T* p) { return *reinterpret_cast<const uvec*>(p); }
static inline vec splat(T x) { return vec{} + x; }

// Lane-wise exp, log and tanh. Built with LANDSCAPE_MVEC (fused.py defines it where glibc's
// vector math library links): libmvec's variant for the vector ISA, a 64-byte vector at a time
// (AVX-512) or as two halves (AVX2), within 4 ulp of the scalar functions and with their NaN,
// ±inf and underflow results; the softmax's exp and log were half of a width-10 step lane by
// lane. Otherwise, and on other ISAs, the scalar functions lane by lane.
#if defined(LANDSCAPE_MVEC) && defined(__AVX512F__)
typedef double mvd __attribute__((vector_size(64)));
typedef float mvf __attribute__((vector_size(64)));
extern "C" mvd _ZGVeN8v_exp(mvd), _ZGVeN8v_log(mvd), _ZGVeN8v_tanh(mvd);
extern "C" mvf _ZGVeN16v_expf(mvf), _ZGVeN16v_logf(mvf), _ZGVeN16v_tanhf(mvf);
#define LANE_FN(name, d, f) \
    static inline mvd name(mvd x) { return d(x); } \
    static inline mvf name(mvf x) { return f(x); }
LANE_FN(vexp, _ZGVeN8v_exp, _ZGVeN16v_expf)
LANE_FN(vlog, _ZGVeN8v_log, _ZGVeN16v_logf)
LANE_FN(vtanh, _ZGVeN8v_tanh, _ZGVeN16v_tanhf)
constexpr bool VECTOR_MATH = true;
#elif defined(LANDSCAPE_MVEC) && defined(__AVX2__)
typedef double mvd __attribute__((vector_size(32)));
typedef float mvf __attribute__((vector_size(32)));
extern "C" mvd _ZGVdN4v_exp(mvd), _ZGVdN4v_log(mvd), _ZGVdN4v_tanh(mvd);
extern "C" mvf _ZGVdN8v_expf(mvf), _ZGVdN8v_logf(mvf), _ZGVdN8v_tanhf(mvf);
template <typename H>
static inline vec halves(vec x, H (*fn)(H)) {
    H part[2];
    std::memcpy(part, &x, sizeof x);
    part[0] = fn(part[0]);
    part[1] = fn(part[1]);
    std::memcpy(&x, part, sizeof x);
    return x;
}
typedef T hvec __attribute__((vector_size(32)));
#define LANE_FN(name, d, f) \
    static inline mvd name##_h(mvd x) { return d(x); } \
    static inline mvf name##_h(mvf x) { return f(x); } \
    static inline vec name(vec x) { return halves<hvec>(x, name##_h); }
LANE_FN(vexp, _ZGVdN4v_exp, _ZGVdN8v_expf)
LANE_FN(vlog, _ZGVdN4v_log, _ZGVdN8v_logf)
LANE_FN(vtanh, _ZGVdN4v_tanh, _ZGVdN8v_tanhf)
constexpr bool VECTOR_MATH = true;
#else
#define LANE_FN(name, fn) \
    static inline vec name(vec x) {                       \
        for (int l = 0; l < L; ++l) x[l] = fn(x[l]);      \
        return x;                                         \
    }
LANE_FN(vexp, std::exp)
LANE_FN(vlog, std::log)
LANE_FN(vtanh, std::tanh)
constexpr bool VECTOR_MATH = false;
#endif

static inline vec act(vec z) {
#if ACT == 0
    return z < 0 ? vec{} : z;  // NaN passes through, as torch.relu
#else
    return vtanh(z);
#endif
}

static inline vec act_back(vec dh, vec h) {
#if ACT == 0
    return h > 0 ? dh : vec{};  // threshold_backward(dh, h, 0)
#else
    return dh * (T(1) - h * h);
#endif
}

// θ's layout (landscape.model.MLPSpec): W1 (D, w), b1 (w), W2 (w, NC), b2 (NC); the gradient's
// lane accumulators and the HVP's vectors are laid out the same way.
template <typename Ptr>
struct Parts {
    Ptr W1, b1, W2, b2;
};

template <typename Ptr>
static inline Parts<Ptr> split(Ptr base, int w) {
    return {base, base + D * w, base + D * w + w, base + D * w + w + w * NC};
}

// The forward pass of the block of points at p0: its inputs x (D × NV vectors) and logits
// f (NC × NV); the hidden outputs h (w × NV) are kept in hbuf when it is given.
static inline void forward_block(const T* XT, int Pp, int p0, int w, const T* W1, const T* b1, const T* W2,
                                 const T* b2, vec (*x)[NV], vec (*f)[NV], vec* hbuf) {
    for (int i = 0; i < D; ++i)
        for (int v = 0; v < NV; ++v) x[i][v] = load(XT + (size_t)i * Pp + p0 + v * L);
    for (int c = 0; c < NC; ++c)
        for (int v = 0; v < NV; ++v) f[c][v] = splat(b2[c]);
    for (int j = 0; j < w; ++j)
        for (int v = 0; v < NV; ++v) {
            vec z = splat(b1[j]);
            for (int i = 0; i < D; ++i) z += W1[i * w + j] * x[i][v];
            vec h = act(z);
            if (hbuf) hbuf[j * NV + v] = h;
            for (int c = 0; c < NC; ++c) f[c][v] += W2[j * NC + c] * h;
        }
}

// The softmax losses' transcendental part of a block, by lanes (with the vector math library):
// per point the largest logit m, e_c = exp(f_c − m), their sum and its log, laid out per lane
// as `head` reads them (NC + 3).
struct Soft {
    vec e[NC][NV], se[NV], lse[NV], m[NV];
    void at(int v, int l, T* out) const {
        for (int c = 0; c < NC; ++c) out[c] = e[c][v][l];
        out[NC] = se[v][l], out[NC + 1] = lse[v][l], out[NC + 2] = m[v][l];
    }
};

static inline void softmax_block(vec (*f)[NV], Soft& sm) {
    for (int v = 0; v < NV; ++v) {
        vec m = f[0][v], se = vec{};
        for (int c = 1; c < NC; ++c) m = f[c][v] > m ? f[c][v] : m;
        for (int c = 0; c < NC; ++c) se += (sm.e[c][v] = vexp(f[c][v] - m));
        sm.se[v] = se, sm.lse[v] = vlog(se), sm.m[v] = m;
    }
}

// The per-sample end: logits f (NC) of one point with label y → (dynamic loss, static loss,
// correct) and ∂F/∂f (NC), the closed forms of landscape/losses.py's Head. soft: the point's
// softmax pieces from `softmax_block` (the softmax losses, with the vector math library).
static inline void head(const T* f, int y, const T* G, T inv, T* g, double* out, const T* soft, T* s = nullptr,
                        T* scale = nullptr) {
    int best = 0;
    for (int c = 1; c < NC; ++c)
        if (f[c] > f[best]) best = c;
    out[2] += best == y;
#if LOSS <= 1
    T e[NC], se = 0, m = f[0], lse;
    if constexpr (VECTOR_MATH) {  // from softmax_block
        std::memcpy(e, soft, sizeof e);
        se = soft[NC], lse = soft[NC + 1], m = soft[NC + 2];
    } else {  // lane by lane, here: the scalar calls cost 2.7× in the vector loop of softmax_block
        for (int c = 1; c < NC; ++c) m = f[c] > m ? f[c] : m;
        for (int c = 0; c < NC; ++c) se += (e[c] = std::exp(f[c] - m));
        lse = std::log(se);
    }
    T nll = -((f[y] - m) - lse);
    T a = LOSS == 1 ? G[y] * inv : inv;
    for (int c = 0; c < NC; ++c) g[c] = (c == y ? -a : T(0)) + e[c] / se * a;
    if (s)
        for (int c = 0; c < NC; ++c) s[c] = e[c] / se;
    if (scale) *scale = a;
    out[0] += LOSS == 1 ? G[y] * nll : nll;
    out[1] += nll;
#else
    T q = 0, st = 0, a = LOSS == 3 ? G[y] * inv : inv;
    for (int c = 0; c < NC; ++c) {
        T target = c == y ? (LOSS == 4 ? G[c] : T(1)) : T(0);
        T d = f[c] - target, ds = f[c] - (c == y ? T(1) : T(0));
        q += d * d;
        st += ds * ds;
        g[c] = a * (2 * d);
    }
    if (scale) *scale = a;
    out[0] += LOSS == 3 ? G[y] * q : q;
    out[1] += st;
#endif
}

// The iterates' period-2 signal of one step (landscape/iterates.py): θ_t is `old`, θ_{t+1} `th`;
// state holds d_{t−1} and p_{t−1} (n each, NaN before the run) and becomes d_t, p_t. Writes
// ‖p_t‖, ‖p_t − p_{t−1}‖, cos(p_t, p_{t−1}) and the K projections u_j · θ_t at out[0, R, 2R, …].
// The differences are the same IEEE subtractions as the torch engines'; the sums run a vector
// at a time (lane sums in T, added in double), so the signal costs a few per cent of a step.
constexpr int KMAX = 16;  // projection directions at most (fused.py refuses more)

static inline void store(T* p, vec v) { *reinterpret_cast<uvec*>(p) = v; }

static inline double lanes(vec v) {
    double s = 0;
    for (int l = 0; l < L; ++l) s += v[l];
    return s;
}

static bool all_finite(const T* x, int n) {
    for (int k = 0; k < n; ++k)
        if (!std::isfinite(x[k])) return false;
    return true;
}

static void iterate_signal(int n, int K, int R, const T* old, const T* th, T* state, const T* U, T* out) {
    T* dp = state;
    T* pp = state + n;
    vec vpn{}, vqn{}, vdot{}, vppn{}, vpr[KMAX] = {};
    int k = 0;
    for (; k + L <= n; k += L) {
        vec o = load(old + k), b = load(pp + k);
        vec d = load(th + k) - o;
        vec p = d - load(dp + k);
        vec q = p - b;
        vpn += p * p;
        vqn += q * q;
        vdot += p * b;
        vppn += b * b;
        store(dp + k, d);
        store(pp + k, p);
        for (int j = 0; j < K; ++j) vpr[j] += o * load(U + (size_t)j * n + k);
    }
    double pn = lanes(vpn), qn = lanes(vqn), dot = lanes(vdot), ppn = lanes(vppn), pr[KMAX];
    for (int j = 0; j < K; ++j) pr[j] = lanes(vpr[j]);
    for (; k < n; ++k) {  // the tail
        T d = th[k] - old[k];
        T p = d - dp[k];
        T q = p - pp[k];
        pn += double(p) * p;
        qn += double(q) * q;
        dot += double(p) * pp[k];
        ppn += double(pp[k]) * pp[k];
        for (int j = 0; j < K; ++j) pr[j] += double(old[k]) * U[(size_t)j * n + k];
        dp[k] = d;
        pp[k] = p;
    }
    double c = dot / std::sqrt(pn * ppn);
    out[0] = T(std::sqrt(pn));
    out[R] = T(std::sqrt(qn));
    out[2 * R] = T(c > 1 ? 1 : (c < -1 ? -1 : c));  // NaN stays NaN
    for (int j = 0; j < K; ++j) out[(size_t)(3 + j) * R] = T(pr[j]);
}

// The optimizer's update of θ_k from its gradient g (torch.optim's rules, operation for operation
// as landscape/problem/optimizers.py writes them): opt 0 gd, 1 heavy-ball momentum, 2 Nesterov,
// 3 RMSProp, 4 Adam with bias correction, 5 without; h: the replica's (β | α | β1, β2, ε);
// s1, s2: its state (v | s | m, s), updated in place; c1, c2: Adam's bias corrections.
static inline void update(int opt, T& th, T g, T eta, const T* h, T& s1, T& s2, T c1, T c2) {
    switch (opt) {
        case 0:
            th -= eta * g;
            break;
        case 1:
        case 2: {
            T v = g + h[0] * s1;  // βv + g
            s1 = v;
            th -= eta * (opt == 2 ? g + h[0] * v : v);
            break;
        }
        case 3: {
            T s = h[0] * s1 + ((1 - h[0]) * g) * g;
            s1 = s;
            th -= (eta * g) / (std::sqrt(s) + h[2]);
            break;
        }
        default: {
            T m = s1 + (1 - h[0]) * (g - s1);  // torch's lerp(m, g, 1 − β1)
            T s = h[1] * s2 + ((1 - h[1]) * g) * g;
            s1 = m;
            s2 = s;
            if (opt == 4)
                th -= ((eta / c1) * m) / (std::sqrt(s) / std::sqrt(c2) + h[2]);
            else
                th -= (eta * m) / (std::sqrt(s) + h[2]);
        }
    }
}

extern "C" int landscape_fused_steps(int S, int R, int w, int P, int Pp, const T* XT, const int32_t* y,
                                     const T* G, const T* eta, T* theta, T* metrics, int K, const T* U,
                                     T* state, T* signals, int opt, const T* hyper, T* st1, T* st2,
                                     long long k0) {
    // XT: (D, Pp) inputs, feature-major, zero-padded to Pp (a multiple of B); y: (Pp,) labels;
    // G: (S, R, NC) Γ of each step; eta: (R,); theta: (R, n) in place; metrics: (S, 3, R) of
    // (F, static loss, training accuracy) at θ before each step. With `signals` (S, 3 + K, R):
    // the iterate signal of each step from the state (R, 2, n), updated in place, and U (K, n).
    // opt, hyper (R, 3), st1, st2 (R, n) in place: the optimizer (`update`), k0 updates done before.
    const int n = D * w + w + w * NC + NC;
    T* old = signals ? new (std::nothrow) T[n] : nullptr;
    if (signals && !old) return 1;
    vec* acc = new (std::nothrow) vec[n + (size_t)w * NV];
    if (!acc) return 1;
    vec* hbuf = acc + n;
    const T inv = T(1.0 / P);
    for (int r = 0; r < R; ++r) {
        T* th = theta + (size_t)r * n;
        if (!all_finite(th, n)) {  // a diverged or stopped replica (θ NaN): every value NaN, nothing to compute
            const T nan = std::numeric_limits<T>::quiet_NaN();
            for (int s = 0; s < S; ++s) {
                for (int j = 0; j < 3; ++j) metrics[((size_t)s * 3 + j) * R + r] = nan;
                if (signals)
                    for (int j = 0; j < 3 + K; ++j) signals[((size_t)s * (3 + K) + j) * R + r] = nan;
            }
            continue;
        }
        const auto [W1, b1, W2, b2] = split<const T*>(th, w);
        const auto [aW1, ab1, aW2, ab2] = split(acc, w);
        for (int s = 0; s < S; ++s) {
            const T* Gs = G + ((size_t)s * R + r) * NC;
            std::memset(static_cast<void*>(acc), 0, sizeof(vec) * n);
            double sums[3] = {0, 0, 0};
            for (int p0 = 0; p0 < Pp; p0 += B) {
                vec x[D][NV], f[NC][NV], g[NC][NV];
                forward_block(XT, Pp, p0, w, W1, b1, W2, b2, x, f, hbuf);  // h = σ(W1ᵀx + b1), f = W2ᵀh + b2
                Soft sm;
                if (LOSS <= 1 && VECTOR_MATH) softmax_block(f, sm);
                for (int v = 0; v < NV; ++v)
                    for (int l = 0; l < L; ++l) {
                        int p = p0 + v * L + l;
                        T fl[NC], gl[NC], soft[NC + 3];
                        for (int c = 0; c < NC; ++c) fl[c] = f[c][v][l];
                        if (LOSS <= 1 && VECTOR_MATH) sm.at(v, l, soft);
                        if (p < P)
                            head(fl, y[p], Gs, inv, gl, sums, soft);
                        else
                            for (int c = 0; c < NC; ++c) gl[c] = 0;
                        for (int c = 0; c < NC; ++c) g[c][v][l] = gl[c];
                    }
                for (int c = 0; c < NC; ++c)
                    for (int v = 0; v < NV; ++v) ab2[c] += g[c][v];
                for (int j = 0; j < w; ++j) {  // backward: ∂W2 = h gᵀ, ∂h = W2 g, ∂z = σ'·∂h, ∂W1 = x ∂zᵀ
                    for (int v = 0; v < NV; ++v) {
                        vec h = hbuf[j * NV + v], dh = vec{};
                        for (int c = 0; c < NC; ++c) {
                            dh += W2[j * NC + c] * g[c][v];
                            aW2[j * NC + c] += g[c][v] * h;
                        }
                        vec dz = act_back(dh, h);
                        ab1[j] += dz;
                        for (int i = 0; i < D; ++i) aW1[i * w + j] += dz * x[i][v];
                    }
                }
            }
            if (old) std::memcpy(old, th, sizeof(T) * n);
            if (opt == 0) {
                for (int k = 0; k < n; ++k) {  // θ ← θ − η ∇F, ∇F = the lanes' sum
                    T gk = 0;
                    for (int l = 0; l < L; ++l) gk += acc[k][l];
                    th[k] -= eta[r] * gk;
                }
            } else {
                const T* h = hyper + (size_t)r * 3;
                T* a1 = st1 + (size_t)r * n;
                T* a2 = st2 ? st2 + (size_t)r * n : a1;
                const double kk = double(k0 + s + 1);  // this update's count (Adam's bias correction)
                const T c1 = T(1) - T(std::pow(h[0], kk)), c2 = T(1) - T(std::pow(h[1], kk));
                for (int k = 0; k < n; ++k) {
                    T gk = 0;
                    for (int l = 0; l < L; ++l) gk += acc[k][l];
                    update(opt, th[k], gk, eta[r], h, a1[k], a2[k], c1, c2);
                }
            }
            if (old)
                iterate_signal(n, K, R, old, th, state + (size_t)r * 2 * n, U, signals + (size_t)s * (3 + K) * R + r);
            T* m = metrics + (size_t)s * 3 * R + r;
            m[0] = T(sums[0] / P);
            m[R] = T(sums[1] / P);
            m[2 * R] = T(sums[2] / P);
        }
    }
    delete[] acc;
    delete[] old;
    return 0;
}

extern "C" int landscape_fused_hvp(int R, int b, int w, int P, int Pp, const T* XT, const int32_t* y, const T* G,
                                   const T* theta, const T* V, T* out) {
    // H V per replica (Pearlmutter's R-operator, as landscape/derivatives.py's hvp): G (R, NC) Γ at
    // this step, theta (R, n), V and out (R, b, n). One pass over the points keeps each point's
    // loss derivatives (∂F/∂f, softmax, scale: (2 NC + 1) numbers); then each vector goes through
    // the R-forward and R-backward pass block by block, recomputing the hidden layer, so only one
    // vector's n accumulators are live (they stay in L1 as the step's do).
    const int n = D * w + w + w * NC + NC;
    const size_t nb = (size_t)Pp / L;  // vectors of points
    vec* acc = new (std::nothrow) vec[n + 3 * (size_t)w * NV + (2 * NC + 1) * nb];
    if (!acc) return 1;
    vec* hbuf = acc + n;
    vec* rzbuf = hbuf + (size_t)w * NV;
    vec* rhbuf = rzbuf + (size_t)w * NV;
    vec* gs = rhbuf + (size_t)w * NV;  // per vector of points: g[NC], s[NC], a
    const T inv = T(1.0 / P);
    for (int r = 0; r < R; ++r) {
        const auto [W1, b1, W2, b2] = split(theta + (size_t)r * n, w);
        const T* Gr = G + (size_t)r * NC;
        for (int p0 = 0; p0 < Pp; p0 += B) {  // the loss derivatives at every point
            vec x[D][NV], f[NC][NV];
            forward_block(XT, Pp, p0, w, W1, b1, W2, b2, x, f, nullptr);
            Soft sm;
            if (LOSS <= 1 && VECTOR_MATH) softmax_block(f, sm);
            for (int v = 0; v < NV; ++v) {
                vec* q = gs + (size_t)(p0 / L + v) * (2 * NC + 1);
                for (int l = 0; l < L; ++l) {
                    int p = p0 + v * L + l;
                    T fl[NC], gl[NC], sl[NC], al = 0, soft[NC + 3];
                    double unused[3] = {0, 0, 0};
                    for (int c = 0; c < NC; ++c) fl[c] = f[c][v][l];
                    if (LOSS <= 1 && VECTOR_MATH) sm.at(v, l, soft);
                    if (p < P) {
                        head(fl, y[p], Gr, inv, gl, unused, soft, sl, &al);
                    } else {
                        for (int c = 0; c < NC; ++c) gl[c] = sl[c] = 0;
                    }
                    for (int c = 0; c < NC; ++c) q[c][l] = gl[c], q[NC + c][l] = sl[c];
                    q[2 * NC][l] = al;
                }
            }
        }
        for (int k = 0; k < b; ++k) {
            const auto [VW1, Vb1, VW2, Vb2] = split(V + ((size_t)r * b + k) * n, w);
            const auto [aW1, ab1, aW2, ab2] = split(acc, w);
            std::memset(static_cast<void*>(acc), 0, sizeof(vec) * n);
            for (int p0 = 0; p0 < Pp; p0 += B) {
                vec x[D][NV], g[NC][NV], sm[NC][NV], a[NV], Rf[NC][NV], Rg[NC][NV];
                for (int v = 0; v < NV; ++v) {
                    const vec* q = gs + (size_t)(p0 / L + v) * (2 * NC + 1);
                    for (int c = 0; c < NC; ++c) g[c][v] = q[c], sm[c][v] = q[NC + c];
                    a[v] = q[2 * NC];
                }
                for (int i = 0; i < D; ++i)
                    for (int v = 0; v < NV; ++v) x[i][v] = load(XT + (size_t)i * Pp + p0 + v * L);
                for (int c = 0; c < NC; ++c)
                    for (int v = 0; v < NV; ++v) Rf[c][v] = splat(Vb2[c]);
                for (int j = 0; j < w; ++j)  // R-forward: Rz = VW1ᵀx + Vb1, Rh = σ'(z) Rz, Rf = VW2ᵀh + W2ᵀRh + Vb2
                    for (int v = 0; v < NV; ++v) {
                        vec z = splat(b1[j]), Rz = splat(Vb1[j]);
                        for (int i = 0; i < D; ++i) {
                            z += W1[i * w + j] * x[i][v];
                            Rz += VW1[i * w + j] * x[i][v];
                        }
                        vec h = act(z);
                        vec Rh = act_back(Rz, h);
                        hbuf[j * NV + v] = h;
                        rhbuf[j * NV + v] = Rh;
#if ACT == 1
                        rzbuf[j * NV + v] = Rz;  // for the σ'' term
#endif
                        for (int c = 0; c < NC; ++c) Rf[c][v] += VW2[j * NC + c] * h + W2[j * NC + c] * Rh;
                    }
                for (int v = 0; v < NV; ++v) {  // Rg = ∂²F/∂f² Rf (losses.Head.hessian)
#if LOSS <= 1
                    vec sR = vec{};
                    for (int c = 0; c < NC; ++c) sR += sm[c][v] * Rf[c][v];
                    for (int c = 0; c < NC; ++c) Rg[c][v] = a[v] * (sm[c][v] * Rf[c][v] - sm[c][v] * sR);
#else
                    for (int c = 0; c < NC; ++c) Rg[c][v] = (2 * a[v]) * Rf[c][v];
#endif
                }
                for (int c = 0; c < NC; ++c)
                    for (int v = 0; v < NV; ++v) ab2[c] += Rg[c][v];
                for (int j = 0; j < w; ++j)  // R-backward
                    for (int v = 0; v < NV; ++v) {
                        vec h = hbuf[j * NV + v], Rh = rhbuf[j * NV + v], Rdh = vec{};
                        for (int c = 0; c < NC; ++c) {
                            aW2[j * NC + c] += Rh * g[c][v] + h * Rg[c][v];
                            Rdh += W2[j * NC + c] * Rg[c][v] + VW2[j * NC + c] * g[c][v];
                        }
                        vec Rdz = act_back(Rdh, h);
#if ACT == 1
                        vec dh = vec{};
                        for (int c = 0; c < NC; ++c) dh += W2[j * NC + c] * g[c][v];
                        Rdz -= 2 * h * (T(1) - h * h) * dh * rzbuf[j * NV + v];  // σ''(z) = −2h(1 − h²)
#endif
                        ab1[j] += Rdz;
                        for (int i = 0; i < D; ++i) aW1[i * w + j] += Rdz * x[i][v];
                    }
            }
            T* o = out + ((size_t)r * b + k) * n;
            for (int q = 0; q < n; ++q) {
                T sum = 0;
                for (int l = 0; l < L; ++l) sum += acc[q][l];
                o[q] = sum;
            }
        }
    }
    delete[] acc;
    return 0;
}

// A block's logits f (NC × NV) into the sums of (dynamic loss, static loss, correct) over its
// points below P: the forward-only passes' end, the training step's `head` point by point.
static inline void block_losses(vec (*f)[NV], int p0, int P, const int32_t* y, const T* Gs, T inv, double* sums) {
    Soft sm;
    if (LOSS <= 1 && VECTOR_MATH) softmax_block(f, sm);
    for (int v = 0; v < NV; ++v)
        for (int l = 0; l < L; ++l) {
            int p = p0 + v * L + l;
            if (p >= P) continue;
            T fl[NC], gl[NC], soft[NC + 3];
            for (int c = 0; c < NC; ++c) fl[c] = f[c][v][l];
            if (LOSS <= 1 && VECTOR_MATH) sm.at(v, l, soft);
            head(fl, y[p], Gs, inv, gl, sums, soft);
        }
}

// How many of a block's points below P have their label's logit the first largest (torch.argmax).
static inline long block_correct(vec (*f)[NV], int p0, int P, const int32_t* y) {
    long correct = 0;
    for (int v = 0; v < NV; ++v)
        for (int l = 0; l < L; ++l) {
            int p = p0 + v * L + l, best = 0;
            if (p >= P) continue;
            for (int c = 1; c < NC; ++c)
                if (f[c][v][l] > f[best][v][l]) best = c;
            correct += best == y[p];
        }
    return correct;
}

extern "C" int landscape_fused_forward(int R, int w, int P, int Pp, const T* XT, const int32_t* y, const T* G,
                                       const T* theta, T* metrics) {
    // F, the static loss and the training accuracy (metrics (3, R)) of each replica's θ with its
    // Γ G (R, NC): the forward pass and the loss alone, no backward (a loss-landscape view's
    // grid of points). The sums are the training step's, in its order: the same values.
    const int n = D * w + w + w * NC + NC;
    const T inv = T(1.0 / P);
    for (int r = 0; r < R; ++r) {
        const T* th = theta + (size_t)r * n;
        if (!all_finite(th, n)) {
            const T nan = std::numeric_limits<T>::quiet_NaN();
            for (int j = 0; j < 3; ++j) metrics[(size_t)j * R + r] = nan;
            continue;
        }
        const auto [W1, b1, W2, b2] = split<const T*>(th, w);
        const T* Gs = G + (size_t)r * NC;
        double sums[3] = {0, 0, 0};
        for (int p0 = 0; p0 < Pp; p0 += B) {
            vec x[D][NV], f[NC][NV];
            forward_block(XT, Pp, p0, w, W1, b1, W2, b2, x, f, nullptr);
            block_losses(f, p0, P, y, Gs, inv, sums);
        }
        metrics[r] = T(sums[0] / P);
        metrics[R + r] = T(sums[1] / P);
        metrics[2 * R + r] = T(sums[2] / P);
    }
    return 0;
}

extern "C" int landscape_fused_accuracy(int R, int w, int P, int Pp, const T* XT, const int32_t* y, const T* theta,
                                        T* out) {
    // The fraction of the P points whose largest logit is their label's (the first largest, as
    // torch.argmax), for each replica: the validation pass of a step, forward only.
    const int n = D * w + w + w * NC + NC;
    for (int r = 0; r < R; ++r) {
        if (!all_finite(theta + (size_t)r * n, n)) {  // a diverged or stopped replica: no accuracy
            out[r] = std::numeric_limits<T>::quiet_NaN();
            continue;
        }
        const auto [W1, b1, W2, b2] = split(theta + (size_t)r * n, w);
        long correct = 0;
        for (int p0 = 0; p0 < Pp; p0 += B) {
            vec x[D][NV], f[NC][NV];
            forward_block(XT, Pp, p0, w, W1, b1, W2, b2, x, f, nullptr);
            correct += block_correct(f, p0, P, y);
        }
        out[r] = T(correct) / T(P);  // as torch: the float count over P
    }
    return 0;
}

extern "C" int landscape_lane_math(int which, int n, const T* x, T* out) {
    // The lane functions on n numbers (0 exp, 1 log, 2 tanh), for the tests; returns whether
    // they are the vector math library's (1) or the scalar functions (0).
    for (int i = 0; i < n; i += L) {
        vec v = vec{};
        for (int l = 0; l < L && i + l < n; ++l) v[l] = x[i + l];
        v = which == 0 ? vexp(v) : which == 1 ? vlog(v) : vtanh(v);
        for (int l = 0; l < L && i + l < n; ++l) out[i + l] = v[l];
    }
    return VECTOR_MATH;
}
