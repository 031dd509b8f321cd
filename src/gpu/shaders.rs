//! Every WGSL source of the crate, in one place.

/// `shaders/mel.wgsl`: power spectrogram to power mel spectrogram.
pub const MEL: &str = include_str!("../../shaders/mel.wgsl");
/// `shaders/row_mean.wgsl`: mean of each mel row over time.
pub const ROW_MEAN: &str = include_str!("../../shaders/row_mean.wgsl");
/// `shaders/perturb.wgsl`: masked copies of a mel spectrogram (after `random.wgsl`).
pub const PERTURB: &str = concat!(
    include_str!("../../shaders/random.wgsl"),
    include_str!("../../shaders/perturb.wgsl")
);
/// `shaders/surrogate.wgsl`: the weighted least-squares surrogate.
pub const SURROGATE: &str = include_str!("../../shaders/surrogate.wgsl");
/// `shaders/resynth.wgsl`: perturbed waveforms mixed from band signals.
pub const RESYNTH: &str = include_str!("../../shaders/resynth.wgsl");
/// `shaders/gl_init.wgsl`: Griffin-Lim's target magnitude and seeded initial phases (after
/// `random.wgsl`).
pub const GL_INIT: &str = concat!(
    include_str!("../../shaders/random.wgsl"),
    include_str!("../../shaders/gl_init.wgsl")
);
/// `shaders/gl_iterate.wgsl`: one fast Griffin-Lim step per frame, FFTs in workgroup memory.
pub const GL_ITERATE: &str = include_str!("../../shaders/gl_iterate.wgsl");
/// `shaders/gl_overlap_add.wgsl`: the inverse STFT's weighted overlap-add.
pub const GL_OVERLAP_ADD: &str = include_str!("../../shaders/gl_overlap_add.wgsl");
/// `shaders/conv_block.wgsl`: one block of the mel CNN (3x3 convolution, batch norm folded,
/// optional 2x2 max pooling, ReLU).
pub const CONV_BLOCK: &str = include_str!("../../shaders/conv_block.wgsl");
/// `shaders/row_head_share.wgsl`: each version of the row-cached CNN's conv3 rows times its
/// row's head weights (after `row_head_params.wgsl`).
pub const ROW_HEAD_SHARE: &str = concat!(
    include_str!("../../shaders/row_head_params.wgsl"),
    include_str!("../../shaders/row_head_share.wgsl")
);
/// `shaders/row_head_softmax.wgsl`: each sample's logits from its versions' shares, and their
/// softmax (after `row_head_params.wgsl`).
pub const ROW_HEAD_SOFTMAX: &str = concat!(
    include_str!("../../shaders/row_head_params.wgsl"),
    include_str!("../../shaders/row_head_softmax.wgsl")
);

/// Every source above with its constant's name, for checks that go over them all.
pub const ALL: [(&str, &str); 11] = [
    ("MEL", MEL),
    ("ROW_MEAN", ROW_MEAN),
    ("PERTURB", PERTURB),
    ("SURROGATE", SURROGATE),
    ("RESYNTH", RESYNTH),
    ("GL_INIT", GL_INIT),
    ("GL_ITERATE", GL_ITERATE),
    ("GL_OVERLAP_ADD", GL_OVERLAP_ADD),
    ("CONV_BLOCK", CONV_BLOCK),
    ("ROW_HEAD_SHARE", ROW_HEAD_SHARE),
    ("ROW_HEAD_SOFTMAX", ROW_HEAD_SOFTMAX),
];

#[cfg(test)]
mod tests {
    //! The kernels are compiled without wgpu's loop bounding (`kernels::runtime_checks`), which
    //! is sound only while every loop ends on its own: these tests check each loop's form.

    use super::ALL;

    /// `loop` statements that end on their own, by source, with why.
    const ENDING_LOOPS: &[(&str, &str)] = &[(
        "GL_ITERATE",
        "fft() doubles `half` from 1 until it reaches n_fft, a power of two up to GL_MAX_FFT \
         (GpuGriffinLim::new refuses others)",
    )];

    /// Names a `for` counter may grow by besides nonzero literals: `WG`, a nonzero constant of
    /// `gl_iterate.wgsl` and `surrogate.wgsl`, and `parts` of `surrogate.wgsl`
    /// (`surrogate::r2_parts`, at least 1).
    const POSITIVE_STEPS: &[&str] = &["WG", "parts"];

    /// The source without its `//` comments.
    fn code(source: &str) -> String {
        source
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_ident(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }

    /// Byte offsets where the word `word` starts in `code`.
    fn word_at(code: &str, word: &str) -> Vec<usize> {
        code.match_indices(word)
            .filter(|(i, _)| {
                let before = code[..*i].chars().next_back().is_none_or(|c| !is_ident(c));
                let after = code[i + word.len()..].chars().next().is_none_or(|c| !is_ident(c));
                before && after
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The text between the bracket `open` at `start` and its match.
    fn bracketed(code: &str, start: usize, open: char, close: char) -> &str {
        let mut depth = 0;
        for (i, c) in code[start..].char_indices() {
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    return &code[start + 1..start + i];
                }
            }
        }
        panic!("unbalanced {open}{close} in a shader");
    }

    /// Whether `body` assigns `name` (`name =`, `name += ...`, `name++`, ...).
    fn assigns(body: &str, name: &str) -> bool {
        word_at(body, name).into_iter().any(|i| {
            let rest = body[i + name.len()..].trim_start();
            ["+=", "-=", "*=", "/=", "++", "--"]
                .iter()
                .any(|op| rest.starts_with(op))
                || (rest.starts_with('=') && !rest.starts_with("=="))
        })
    }

    /// Why the `for` loop with this header and body might not end, or None when it ends: a
    /// counter declared by the loop that grows by a positive step up to a bound (`i < n`; the
    /// bounds are buffer lengths, far below the point where the counter would wrap), or halves
    /// down to zero (`s > 0u`), and that the body does not assign.
    fn for_loop_fault(header: &str, body: &str) -> Option<String> {
        let parts: Vec<&str> = header.split(';').map(str::trim).collect();
        let [init, cond, step] = parts[..] else {
            return Some(format!("cannot read the header `{header}`"));
        };
        let Some(var) = init.strip_prefix("var ") else {
            return Some(format!("the counter is not declared by the loop: `{init}`"));
        };
        let name = var.split(|c: char| !is_ident(c)).next().unwrap_or("");
        let step = step.replace(' ', "");
        let growing = cond.starts_with(&format!("{name} <")) && {
            let by = step
                .strip_prefix(&format!("{name}={name}+"))
                .or_else(|| step.strip_prefix(&format!("{name}+=")));
            step == format!("{name}++")
                || by.is_some_and(|s| {
                    POSITIVE_STEPS.contains(&s) || s.trim_end_matches('u').parse::<u64>().is_ok_and(|v| v > 0)
                })
        };
        let halving = cond.replace(' ', "") == format!("{name}>0u")
            && (step == format!("{name}={name}/2u") || step == format!("{name}/=2u"));
        if !growing && !halving {
            return Some(format!(
                "`{cond}; {step}` is neither a counter growing to a bound nor one halving to zero"
            ));
        }
        if assigns(body, name) {
            return Some(format!("the body assigns the counter `{name}`"));
        }
        None
    }

    #[test]
    fn every_loop_ends() {
        let mut faults = vec![];
        let mut for_loops = 0;
        for (shader, source) in ALL {
            let code = code(source);
            for at in word_at(&code, "for") {
                let open = at + code[at..].find('(').expect("a for loop has a header");
                let header = bracketed(&code, open, '(', ')');
                let brace = open + code[open..].find('{').expect("a for loop has a body");
                let body = bracketed(&code, brace, '{', '}');
                for_loops += 1;
                if let Some(fault) = for_loop_fault(header, body) {
                    faults.push(format!("{shader}: for ({header}): {fault}"));
                }
            }
            if !word_at(&code, "while").is_empty() {
                faults.push(format!("{shader}: a while loop (write a for loop with a bound)"));
            }
            let loops = word_at(&code, "loop").len();
            let known = ENDING_LOOPS.iter().filter(|(s, _)| *s == shader).count();
            if loops != known {
                faults.push(format!(
                    "{shader}: {loops} loop statements, {known} listed in ENDING_LOOPS with why they end"
                ));
            }
        }
        assert!(faults.is_empty(), "loops that may not end:\n{}", faults.join("\n"));
        assert!(for_loops > 30, "only {for_loops} for loops found: the scan is broken");
    }

    #[test]
    fn all_holds_every_shader_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("shaders/ is readable") {
            let path = entry.expect("shaders/ is readable").path();
            if path.extension().is_some_and(|e| e == "wgsl") {
                files += 1;
                let text = std::fs::read_to_string(&path).expect("a shader is readable");
                assert!(
                    ALL.iter().any(|(_, source)| source.contains(text.as_str())),
                    "{} is in no source of shaders::ALL, so its loops go unchecked",
                    path.display()
                );
            }
        }
        assert!(files >= ALL.len(), "{files} shader files for {} sources", ALL.len());
    }

    #[test]
    fn the_loop_check_catches_loops_that_may_not_end() {
        let ends = |header: &str, body: &str| for_loop_fault(header, body).is_none();
        assert!(ends("var i = 0u; i < n; i++", "x += 1.0;"));
        assert!(ends("var t: u32 = lid; t < n; t = t + 64u", ""));
        assert!(ends("var e: u32 = lid; e < c * p; e = e + WG", ""));
        assert!(ends("var s: u32 = 32u; s > 0u; s = s / 2u", "y = s;"));
        assert!(!ends("var i = 0u; i < n; i = i + step", ""), "an unknown step may be 0");
        assert!(!ends("var i = 0u; i < n; i = i + 0u", ""));
        assert!(!ends("var i = n; i > 0u; i--", ""), "counting down is not checked");
        assert!(
            !ends("var i = 0u; i < n; i++", "i = 0u;"),
            "the body resets the counter"
        );
        assert!(!ends("var i = 0u; i < n; i++", "if (a) { i -= 1u; }"));
        assert!(ends("var i = 0u; i < n; i++", "if (i == 3u) { break; }"));
        assert!(!ends("; i < n; i++", ""), "a counter from outside the loop");
        let code = code("loop { } // while\nwhile (true) {}");
        assert_eq!(word_at(&code, "loop").len(), 1);
        assert_eq!(word_at(&code, "while").len(), 1);
        assert!(word_at("loops for_each", "loop").is_empty());
        assert!(word_at("loops for_each", "for").is_empty());
    }
}
