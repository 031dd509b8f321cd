// random.wgsl: the counter-based random numbers of sampling::random_u32 and unit_open, shared
// by the kernels that draw them (prepended to perturb.wgsl and gl_init.wgsl in gpu::shaders;
// no bindings, no entry point).

// lowbias32, as sampling::hash_u32.
fn hash_u32(x_in: u32) -> u32 {
    var x = x_in;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    x = x ^ (x >> 16u);
    return x;
}

// As sampling::random_u32 with the seed's low and high words.
fn random_u32(seed_lo: u32, seed_hi: u32, stream: u32, a: u32, b: u32) -> u32 {
    var h = hash_u32(seed_lo ^ 0x9e3779b9u);
    h = hash_u32(h ^ seed_hi);
    h = hash_u32(h ^ stream);
    h = hash_u32(h ^ a);
    return hash_u32(h ^ b);
}

// As sampling::unit_open: uniform in (0, 1].
fn unit_open(w: u32) -> f32 {
    return f32((w >> 8u) + 1u) * (1.0 / 16777216.0);
}
