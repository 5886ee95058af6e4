//! The demo catalog: three short pieces of real, playable music, synthesised here, so that the
//! README's "main job", the integration tests and the benchmarks have media to stream without
//! network access, external tools or binary files in the repository.
//!
//! The bytes must be identical on every run and on every platform: tests compare checksums,
//! caches are keyed by content, and a restart should find last run's files still valid. So the
//! synthesis uses only `+ - * /`, `floor`, `round` and `f64`/`f32` conversions (all exactly
//! specified by IEEE 754; no `sin`, `exp` or `powf`, whose last bits differ between C libraries),
//! a seeded SplitMix64 for every musical choice, and integer sample positions. Oscillators are
//! phase rotations whose step comes from a polynomial sine. Debug and release builds produce the
//! same bytes. The expected SHA-256 of each piece is pinned in [`PIECES`]; a unit
//! test fails when the music changes, and [`generate_catalog`] skips pieces whose file on disk
//! already has that digest.
//!
//! Output is canonical 44-byte-header PCM WAV (16-bit, little-endian), which ffprobe, browsers'
//! `<audio>` and ExoPlayer all play and whose header a test harness can parse by hand.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Name of the catalog file written next to the tracks: a JSON array of [`DemoTrack`].
pub const CATALOG_FILE: &str = "catalog.json";

/// One generated track, as listed in `catalog.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoTrack {
    /// Stable identifier, also the file stem (`morning-melody`).
    pub id: String,
    /// Human-readable title.
    pub title: String,
    /// File name inside the catalog directory.
    pub file: String,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Media type of the file (`audio/wav`).
    pub mime: String,
    /// Playing time in seconds.
    pub duration_secs: f64,
}

/// Media type of every demo track.
const WAV_MIME: &str = "audio/wav";
/// Length of the canonical RIFF/WAVE header in bytes.
const WAV_HEADER_LEN: u64 = 44;
/// Peak level after normalisation, as a fraction of full scale (about -1.9 dBFS).
const PEAK: f64 = 0.8;

/// A piece of the catalog: its format, its composition and the digest its bytes must have.
struct Piece {
    id: &'static str,
    title: &'static str,
    /// Samples per second per channel.
    sample_rate: u32,
    channels: u16,
    /// Length in whole seconds.
    seconds: u32,
    /// Seed of every random choice in the composition.
    seed: u64,
    compose: fn(&mut Mix, &mut Rng),
    /// SHA-256 (hex) of the rendered file; see `rendering_is_deterministic_and_pinned`.
    sha256: &'static str,
}

/// The catalog, in order.
const PIECES: [Piece; 3] = [
    Piece {
        id: "morning-melody",
        title: "Morning Melody",
        sample_rate: 44_100,
        channels: 1,
        seconds: 72,
        seed: 0x6d6f_726e_696e_6721,
        compose: morning_melody,
        sha256: "29079c7a66e7ec4a60ac41dcd01ae11a9d7865bc6b499a99227926c77f33d970",
    },
    Piece {
        id: "evening-chords",
        title: "Evening Chords",
        sample_rate: 22_050,
        channels: 2,
        seconds: 68,
        seed: 0x6576_656e_696e_6721,
        compose: evening_chords,
        sha256: "24113ddecf70a8fd8352fb858950eabfe4a588e52d8ba2fcc6551a2c6e874aef",
    },
    Piece {
        id: "night-arpeggio",
        title: "Night Arpeggio",
        sample_rate: 44_100,
        channels: 1,
        seconds: 82,
        seed: 0x6e69_6768_7421_2121,
        compose: night_arpeggio,
        sha256: "a02a9ad0857062c34d260784015f60f29117a5a7767288e6e2f1375b78f049de",
    },
];

/// Writes the demo tracks and `catalog.json` into `dir` (created if missing) and returns the
/// catalog. Tracks already present with the expected size and SHA-256 are kept as they are, so a
/// restart costs a checksum rather than a synthesis. Files are written under a temporary name and
/// renamed, so a reader never sees half a track.
pub fn generate_catalog(dir: &Path) -> io::Result<Vec<DemoTrack>> {
    fs::create_dir_all(dir)?;
    let mut tracks = Vec::with_capacity(PIECES.len());
    for piece in &PIECES {
        let file = piece.file_name();
        let path = dir.join(&file);
        let sha256 = match existing_sha256(&path, piece.wav_size())? {
            Some(digest) if digest == piece.sha256 => digest,
            _ => {
                let bytes = piece.render();
                write_atomically(dir, &file, &bytes)?;
                hex::encode(Sha256::digest(&bytes))
            }
        };
        tracks.push(DemoTrack {
            id: piece.id.to_owned(),
            title: piece.title.to_owned(),
            file,
            size: piece.wav_size(),
            sha256,
            mime: WAV_MIME.to_owned(),
            duration_secs: f64::from(piece.seconds),
        });
    }
    let mut catalog = serde_json::to_vec_pretty(&tracks).map_err(io::Error::other)?;
    catalog.push(b'\n');
    write_atomically(dir, CATALOG_FILE, &catalog)?;
    Ok(tracks)
}

impl Piece {
    fn file_name(&self) -> String {
        format!("{}.wav", self.id)
    }

    fn frames(&self) -> u64 {
        u64::from(self.sample_rate) * u64::from(self.seconds)
    }

    fn wav_size(&self) -> u64 {
        WAV_HEADER_LEN + self.frames() * u64::from(self.channels) * 2
    }

    /// The complete WAV file.
    fn render(&self) -> Vec<u8> {
        let mut mix = Mix::new(self.sample_rate, self.channels, self.frames());
        let mut rng = Rng(self.seed);
        (self.compose)(&mut mix, &mut rng);
        mix.into_wav(self.sample_rate)
    }
}

/// The SHA-256 of `path` if it exists with `size` bytes; `None` if it is missing or of another
/// size (then it is rewritten).
fn existing_sha256(path: &Path, size: u64) -> io::Result<Option<String>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    if file.metadata()?.len() != size {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = File::create(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| fs::rename(&temp, dir.join(name)));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// The compositions. Times are in seconds, pitches are MIDI note numbers (60 = middle C).

/// C major pentatonic melody over C – Am – F – G with bass and a soft pad, 96 BPM, form A B A
/// and a cadence.
fn morning_melody(mix: &mut Mix, rng: &mut Rng) {
    const EIGHTH: f64 = 60.0 / 96.0 / 2.0;
    const BAR: f64 = 8.0 * EIGHTH;
    // Pitch classes of C, Am, F, G and their bass roots.
    const CHORDS: [[i32; 3]; 4] = [[0, 4, 7], [9, 0, 4], [5, 9, 0], [7, 11, 2]];
    const ROOTS: [i32; 4] = [48, 45, 41, 43];
    // Bars 24..27 are the cadence F – G – C.
    let chord_of = |bar: usize| if bar < 24 { bar % 4 } else { [2, 3, 0][bar - 24] };

    let scale: Vec<i32> = (55..=81).filter(|n| [0, 2, 4, 7, 9].contains(&(n % 12))).collect();
    let a = melody_section(rng, &scale, &CHORDS);
    let b = melody_section(rng, &scale, &CHORDS);
    for (section, notes) in [&a, &b, &a].into_iter().enumerate() {
        for &(slot, slots, midi) in notes {
            let start = (section * 64 + slot) as f64 * EIGHTH;
            let gain = 0.30 * (0.9 + 0.2 * rng.unit());
            mix.add_note(&Note::new(MELODY, start, slots as f64 * EIGHTH * 0.9, midi, gain));
        }
    }
    let cadence: [(usize, usize, i32); 6] = [
        (24 * 8, 2, 69),
        (24 * 8 + 2, 2, 72),
        (24 * 8 + 4, 4, 69),
        (25 * 8, 4, 67),
        (25 * 8 + 4, 4, 62),
        (26 * 8, 12, 72),
    ];
    for (slot, slots, midi) in cadence {
        let start = slot as f64 * EIGHTH;
        mix.add_note(&Note::new(MELODY, start, slots as f64 * EIGHTH * 0.9, midi, 0.3));
    }

    for bar in 0..27 {
        let chord = chord_of(bar);
        let start = bar as f64 * BAR;
        let root = ROOTS[chord];
        if bar < 26 {
            mix.add_note(&Note::new(BASS, start, BAR * 0.48, root, 0.45));
            mix.add_note(&Note::new(BASS, start + BAR / 2.0, BAR * 0.48, root + 7, 0.4));
        } else {
            mix.add_note(&Note::new(BASS, start, BAR * 1.5, root, 0.45));
        }
        let length = if bar < 26 { BAR } else { BAR * 1.5 };
        for pc in CHORDS[chord] {
            mix.add_note(&Note::new(PAD, start, length, 55 + (pc + 5) % 12, 0.07));
        }
    }
}

/// Eight bars of melody as `(eighth-note slot, length in slots, pitch)`: rhythms from a small
/// set, a random walk on the scale, chord tones on every downbeat and at the end.
fn melody_section(rng: &mut Rng, scale: &[i32], chords: &[[i32; 3]; 4]) -> Vec<(usize, usize, i32)> {
    const RHYTHMS: [&[usize]; 7] = [
        &[2, 2, 2, 2],
        &[3, 1, 2, 2],
        &[2, 1, 1, 2, 2],
        &[1, 1, 2, 1, 1, 2],
        &[4, 2, 2],
        &[3, 3, 2],
        &[2, 2, 4],
    ];
    const STEPS: [isize; 7] = [-2, -1, -1, 0, 1, 1, 2];
    let mut notes = Vec::new();
    let mut position = scale.iter().position(|&n| n == 64).unwrap_or(0);
    for bar in 0..8 {
        let chord = &chords[bar % 4];
        let rhythm = if bar == 7 {
            &[2, 2, 4]
        } else {
            RHYTHMS[rng.below(RHYTHMS.len())]
        };
        let mut slot = 0;
        for (k, &slots) in rhythm.iter().enumerate() {
            let last = k + 1 == rhythm.len();
            if k > 0 && !last && rng.chance(0.12) {
                slot += slots; // a rest
                continue;
            }
            let step = *rng.pick(&STEPS);
            position = position.saturating_add_signed(step).clamp(2, scale.len() - 3);
            if k == 0 || (bar == 7 && last) {
                position = nearest_chord_tone(scale, position, chord);
            }
            notes.push((bar * 8 + slot, slots, scale[position]));
            slot += slots;
        }
    }
    notes
}

/// The scale position nearest to `position` whose pitch belongs to `chord` (lower one first).
fn nearest_chord_tone(scale: &[i32], position: usize, chord: &[i32; 3]) -> usize {
    let in_chord = |i: usize| chord.contains(&(scale[i] % 12));
    for distance in 0..scale.len() {
        if position >= distance && in_chord(position - distance) {
            return position - distance;
        }
        if position + distance < scale.len() && in_chord(position + distance) {
            return position + distance;
        }
    }
    position
}

/// Slow stereo pads over Cmaj7 – G/B – Am7 – Em7 – Fmaj7 – C/E – Dm7 – G7, played twice at
/// 60 BPM, with soft bells on random eighths and a final C.
fn evening_chords(mix: &mut Mix, rng: &mut Rng) {
    const BAR: f64 = 4.0;
    const CHORDS: [(i32, [i32; 4]); 8] = [
        (36, [60, 64, 67, 71]),
        (47, [62, 67, 71, 74]),
        (45, [60, 64, 67, 69]),
        (40, [59, 62, 64, 67]),
        (41, [57, 60, 64, 69]),
        (40, [55, 60, 64, 67]),
        (38, [57, 60, 62, 65]),
        (43, [55, 59, 62, 65]),
    ];
    for bar in 0..17 {
        let last = bar == 16;
        let (bass, pad) = CHORDS[bar % 8];
        let start = bar as f64 * BAR;
        let length = if last { 2.6 } else { BAR };
        mix.add_note(&Note::new(BASS, start, length * 0.98, bass, 0.4));
        for midi in pad {
            // Two slightly detuned copies spread left and right make the pad wide and slow-beating.
            mix.add_note(&Note::new(PAD, start, length + 0.1, midi, 0.11).pan(-0.7).tune(0.9985));
            mix.add_note(&Note::new(PAD, start, length + 0.1, midi, 0.11).pan(0.7).tune(1.0015));
        }
        let eighths = if last { 1 } else { 8 };
        for eighth in 0..eighths {
            if eighth == 0 || rng.chance(0.3) {
                let midi = *rng.pick(&pad) + 12;
                let gain = 0.09 * (0.8 + 0.4 * rng.unit());
                let pan = rng.unit() * 1.2 - 0.6;
                let at = start + eighth as f64 * BAR / 8.0;
                mix.add_note(&Note::new(BELL, at, 0.5, midi, gain).pan(pan));
            }
        }
    }
}

/// Sixteenth-note plucked arpeggios over Am – F – C – G at 112 BPM with an echo, a bass line,
/// and a final strummed A minor.
fn night_arpeggio(mix: &mut Mix, rng: &mut Rng) {
    const SIXTEENTH: f64 = 60.0 / 112.0 / 4.0;
    const BAR: f64 = 16.0 * SIXTEENTH;
    const BARS: usize = 36;
    const CHORDS: [(i32, [i32; 6]); 4] = [
        (45, [57, 60, 64, 69, 72, 76]),
        (41, [57, 60, 65, 69, 72, 77]),
        (48, [55, 60, 64, 67, 72, 76]),
        (43, [55, 59, 62, 67, 71, 74]),
    ];
    const PATTERNS: [[usize; 16]; 3] = [
        [0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 2, 3, 4, 5, 4, 3],
        [0, 2, 1, 3, 2, 4, 3, 5, 4, 2, 3, 1, 2, 0, 1, 2],
        [0, 1, 2, 1, 3, 2, 4, 3, 5, 4, 3, 2, 4, 3, 2, 1],
    ];
    let mut arpeggio = Mix::new_like(mix);
    let mut pattern = &PATTERNS[0];
    for bar in 0..BARS {
        if bar % 4 == 0 {
            // The first and last phrases use the plain pattern, the ones between vary.
            pattern = if bar == 0 || bar + 4 >= BARS {
                &PATTERNS[0]
            } else {
                rng.pick(&PATTERNS)
            };
        }
        let (bass, notes) = CHORDS[bar % 4];
        let start = bar as f64 * BAR;
        for (k, &index) in pattern.iter().enumerate() {
            let accent = if k % 4 == 0 { 1.0 } else { 0.72 };
            let gain = 0.2 * accent * (0.92 + 0.16 * rng.unit());
            let at = start + k as f64 * SIXTEENTH;
            arpeggio.add_note(&Note::new(PLUCK, at, SIXTEENTH * 1.6, notes[index], gain));
        }
        mix.add_note(&Note::new(BASS, start, BAR * 0.95, bass, 0.35));
    }
    let end = BARS as f64 * BAR;
    for (k, midi) in [45, 57, 60, 64, 69, 72].into_iter().enumerate() {
        arpeggio.add_note(&Note::new(PLUCK, end + k as f64 * 0.03, 2.5, midi, 0.2));
    }
    mix.add_note(&Note::new(BASS, end, 2.5, 45, 0.3));
    arpeggio.echo(3.0 * SIXTEENTH, 0.32);
    mix.add(&arpeggio);
}

// ---------------------------------------------------------------------------------------------
// The synthesiser.

/// A timbre (partials as `(frequency multiple, amplitude)`) and an envelope (seconds, levels).
#[derive(Clone, Copy)]
struct Voice {
    /// Distinguishes voices in the note cache.
    name: &'static str,
    partials: &'static [(f64, f64)],
    attack: f64,
    /// Time constant of the fall from peak towards `sustain`.
    decay: f64,
    sustain: f64,
    release: f64,
}

const MELODY: Voice = Voice {
    name: "melody",
    partials: &[(1.0, 1.0), (2.0, 0.35), (3.0, 0.12), (4.0, 0.05)],
    attack: 0.012,
    decay: 0.18,
    sustain: 0.5,
    release: 0.3,
};
const BASS: Voice = Voice {
    name: "bass",
    partials: &[(1.0, 1.0), (2.0, 0.3), (3.0, 0.08)],
    attack: 0.02,
    decay: 0.3,
    sustain: 0.55,
    release: 0.25,
};
const PAD: Voice = Voice {
    name: "pad",
    partials: &[(1.0, 1.0), (2.0, 0.2), (3.0, 0.06)],
    attack: 0.5,
    decay: 1.5,
    sustain: 0.75,
    release: 0.9,
};
const BELL: Voice = Voice {
    name: "bell",
    partials: &[(1.0, 1.0), (2.0, 0.5), (3.0, 0.2), (4.16, 0.08)],
    attack: 0.004,
    decay: 0.25,
    sustain: 0.0,
    release: 0.9,
};
const PLUCK: Voice = Voice {
    name: "pluck",
    partials: &[(1.0, 1.0), (2.0, 0.5), (3.0, 0.25), (4.0, 0.12), (5.0, 0.06)],
    attack: 0.003,
    decay: 0.08,
    sustain: 0.0,
    release: 0.12,
};

impl Voice {
    /// Envelope level `t` seconds after note-on for a note held `held` seconds.
    fn level(&self, t: f64, held: f64) -> f64 {
        if t < held {
            return self.held_level(t);
        }
        let released = (t - held) / self.release;
        if released >= 1.0 {
            0.0
        } else {
            self.held_level(held) * (1.0 - released)
        }
    }

    fn held_level(&self, t: f64) -> f64 {
        if t < self.attack {
            return t / self.attack;
        }
        // A hyperbolic fall: cheap, smooth, and made of exactly specified operations.
        let x = 1.0 + (t - self.attack) / self.decay;
        self.sustain + (1.0 - self.sustain) / (x * x)
    }
}

/// One note to render.
struct Note {
    voice: Voice,
    /// Onset, seconds from the start of the piece.
    start: f64,
    /// Time until release, seconds.
    length: f64,
    midi: i32,
    gain: f64,
    /// -1 (left) .. 1 (right); ignored in mono.
    pan: f64,
    /// Frequency multiplier for detuning.
    tune: f64,
}

impl Note {
    fn new(voice: Voice, start: f64, length: f64, midi: i32, gain: f64) -> Note {
        Note {
            voice,
            start,
            length,
            midi,
            gain,
            pan: 0.0,
            tune: 1.0,
        }
    }

    fn pan(self, pan: f64) -> Note {
        Note { pan, ..self }
    }

    fn tune(self, tune: f64) -> Note {
        Note { tune, ..self }
    }
}

/// Planar sample buffers, one per channel, that notes are added into, plus a cache of rendered
/// notes: the pieces repeat the same pitch, voice and length many times, and synthesising each
/// distinct note once keeps generation fast even in unoptimised builds. Samples are stored as
/// `f32` (ample for 16-bit output, half the memory); synthesis itself runs in `f64`.
struct Mix {
    rate: f64,
    channels: Vec<Vec<f32>>,
    /// Rendered notes (envelope applied, gain not) by voice, pitch, tuning and length.
    cache: HashMap<(&'static str, i32, u64, u64), Rc<[f32]>>,
}

impl Mix {
    fn new(sample_rate: u32, channels: u16, frames: u64) -> Mix {
        let frames = usize::try_from(frames).unwrap_or(0);
        Mix {
            rate: f64::from(sample_rate),
            channels: vec![vec![0.0; frames]; usize::from(channels)],
            cache: HashMap::new(),
        }
    }

    fn new_like(other: &Mix) -> Mix {
        Mix {
            rate: other.rate,
            channels: vec![vec![0.0; other.frames()]; other.channels.len()],
            cache: HashMap::new(),
        }
    }

    fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    fn add_note(&mut self, note: &Note) {
        let key = (note.voice.name, note.midi, note.tune.to_bits(), note.length.to_bits());
        let rate = self.rate;
        let wave = Rc::clone(self.cache.entry(key).or_insert_with(|| render_note(note, rate).into()));
        let first = (note.start * self.rate).round() as usize;
        let end = first.saturating_add(wave.len()).min(self.frames());
        if first >= end {
            return;
        }
        let wave = &wave[..end - first];
        // A balance law: the near side stays at full level, the far side fades.
        let gains: &[f64] = match self.channels.len() {
            1 => &[note.gain],
            _ => &[
                (1.0 - note.pan).min(1.0) * note.gain,
                (1.0 + note.pan).min(1.0) * note.gain,
            ],
        };
        for (channel, &gain) in self.channels.iter_mut().zip(gains) {
            let gain = gain as f32;
            for (out, &sample) in channel[first..end].iter_mut().zip(wave) {
                *out += sample * gain;
            }
        }
    }

    /// A feedback echo: every sample is fed back `delay` seconds later at `feedback` gain.
    fn echo(&mut self, delay: f64, feedback: f32) {
        let delay = (delay * self.rate).round() as usize;
        for channel in &mut self.channels {
            for i in delay..channel.len() {
                channel[i] += channel[i - delay] * feedback;
            }
        }
    }

    fn add(&mut self, other: &Mix) {
        for (ours, theirs) in self.channels.iter_mut().zip(&other.channels) {
            for (a, b) in ours.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }

    /// Fades the ends, normalises the peak to [`PEAK`] and encodes a 16-bit PCM WAV file.
    fn into_wav(mut self, sample_rate: u32) -> Vec<u8> {
        let frames = self.frames();
        let fade_in = ((0.02 * self.rate) as usize).min(frames);
        let fade_out = ((1.5 * self.rate) as usize).min(frames);
        for channel in &mut self.channels {
            for (i, sample) in channel[..fade_in].iter_mut().enumerate() {
                *sample *= (i as f64 / fade_in as f64) as f32;
            }
            let tail = frames - fade_out;
            for (i, sample) in channel[tail..].iter_mut().enumerate() {
                *sample *= ((fade_out - i) as f64 / fade_out as f64) as f32;
            }
        }
        let peak = self
            .channels
            .iter()
            .flatten()
            .fold(0.0_f32, |peak, s| peak.max(s.abs()));
        let scale = if peak > 0.0 {
            (PEAK * 32767.0 / f64::from(peak)) as f32
        } else {
            0.0
        };

        let channels = self.channels.len();
        let data_len = frames * channels * 2;
        let header = wav_header(sample_rate, channels as u16, data_len as u32);
        let mut out = vec![0; header.len() + data_len];
        out[..header.len()].copy_from_slice(&header);
        for (c, channel) in self.channels.iter().enumerate() {
            let slots = out[header.len() + 2 * c..].chunks_mut(2 * channels);
            for (slot, &sample) in slots.zip(channel) {
                // `as` saturates, so this clamps to the i16 range.
                let value = (sample * scale).round() as i16;
                slot[..2].copy_from_slice(&value.to_le_bytes());
            }
        }
        out
    }
}

/// One note as samples, envelope included, gain and pan not. Each partial is a sine oscillator
/// kept as a rotating unit vector (one complex multiplication per sample), whose step comes from
/// the portable [`sine`]; partials near or above Nyquist are left out.
fn render_note(note: &Note, rate: f64) -> Vec<f32> {
    let voice = &note.voice;
    let len = ((note.length + voice.release) * rate).ceil() as usize;
    let freq = midi_to_hz(note.midi) * note.tune;
    let mut wave = vec![0.0_f64; len];
    for &(multiple, amplitude) in voice.partials {
        let step = freq * multiple / rate;
        if step >= 0.45 {
            continue;
        }
        let (cos_step, sin_step) = (sine(step + 0.25), sine(step));
        let (mut re, mut im) = (1.0_f64, 0.0_f64);
        for sample in &mut wave {
            *sample += im * amplitude;
            let next_re = re * cos_step - im * sin_step;
            im = re * sin_step + im * cos_step;
            re = next_re;
        }
    }
    wave.iter()
        .enumerate()
        .map(|(i, sample)| (sample * voice.level(i as f64 / rate, note.length)) as f32)
        .collect()
}

/// The canonical 44-byte RIFF/WAVE header for 16-bit PCM.
fn wav_header(sample_rate: u32, channels: u16, data_len: u32) -> [u8; 44] {
    let block_align = channels * 2;
    let byte_rate = sample_rate * u32::from(block_align);
    let mut header = [0; 44];
    let fields: [&[u8]; 13] = [
        b"RIFF",
        &(36 + data_len).to_le_bytes(),
        b"WAVE",
        b"fmt ",
        &16_u32.to_le_bytes(), // fmt chunk length
        &1_u16.to_le_bytes(),  // PCM
        &channels.to_le_bytes(),
        &sample_rate.to_le_bytes(),
        &byte_rate.to_le_bytes(),
        &block_align.to_le_bytes(),
        &16_u16.to_le_bytes(), // bits per sample
        b"data",
        &data_len.to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        header[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    header
}

/// 2^(k/12) for k in 0..12, so pitches need no `powf`.
const SEMITONES: [f64; 12] = [
    1.0,
    1.059_463_094_359_295_3,
    1.122_462_048_309_373,
    1.189_207_115_002_721,
    1.259_921_049_894_873_2,
    1.334_839_854_170_034_4,
    std::f64::consts::SQRT_2,
    1.498_307_076_876_681_5,
    1.587_401_051_968_199_4,
    1.681_792_830_507_429,
    1.781_797_436_280_678_5,
    1.887_748_625_363_386_8,
];

/// Equal-tempered frequency of a MIDI note, A4 (69) = 440 Hz.
fn midi_to_hz(midi: i32) -> f64 {
    let offset = midi - 69;
    let mut hz = 440.0 * SEMITONES[offset.rem_euclid(12) as usize];
    let octaves = offset.div_euclid(12);
    for _ in 0..octaves.unsigned_abs() {
        hz = if octaves > 0 { hz * 2.0 } else { hz * 0.5 };
    }
    hz
}

/// sin(2π·`cycles`) from a degree-11 Taylor polynomial after exact range reduction; error below
/// 1e-7, and the same bits on every platform.
fn sine(cycles: f64) -> f64 {
    let fraction = cycles - cycles.floor();
    // sin(2πf) = -sin(θ) with θ = 2π(f - 1/2) in [-π, π).
    let mut theta = (fraction - 0.5) * 2.0 * std::f64::consts::PI;
    let half_pi = std::f64::consts::FRAC_PI_2;
    if theta > half_pi {
        theta = std::f64::consts::PI - theta;
    } else if theta < -half_pi {
        theta = -std::f64::consts::PI - theta;
    }
    let x2 = theta * theta;
    let poly = 1.0
        + x2 * (-1.0 / 6.0
            + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362_880.0 + x2 * (-1.0 / 39_916_800.0)))));
    -(theta * poly)
}

/// SplitMix64: tiny, well-studied, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// Uniform in 0..n (the modulo bias is irrelevant at these sizes).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::time::{Duration, UNIX_EPOCH};

    /// Each piece rendered once per test process (rendering is the slow part in debug builds).
    fn rendered() -> &'static [Vec<u8>] {
        static RENDERED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        RENDERED.get_or_init(|| PIECES.iter().map(Piece::render).collect())
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    #[test]
    fn wav_headers_are_valid() {
        for (piece, bytes) in PIECES.iter().zip(rendered()) {
            assert_eq!(bytes.len() as u64, piece.wav_size(), "{}", piece.id);
            assert_eq!(&bytes[0..4], b"RIFF");
            assert_eq!(u32_at(bytes, 4) as usize, bytes.len() - 8);
            assert_eq!(&bytes[8..12], b"WAVE");
            assert_eq!(&bytes[12..16], b"fmt ");
            assert_eq!(u32_at(bytes, 16), 16, "fmt chunk length");
            assert_eq!(u16_at(bytes, 20), 1, "PCM");
            let channels = u16_at(bytes, 22);
            let rate = u32_at(bytes, 24);
            assert!(channels == 1 || channels == 2);
            assert!(rate == 44_100 || rate == 22_050);
            assert_eq!(u32_at(bytes, 28), rate * u32::from(channels) * 2, "byte rate");
            assert_eq!(u16_at(bytes, 32), channels * 2, "block align");
            assert_eq!(u16_at(bytes, 34), 16, "bits per sample");
            assert_eq!(&bytes[36..40], b"data");
            let data_len = u32_at(bytes, 40) as usize;
            assert_eq!(data_len, bytes.len() - 44);
            assert_eq!(data_len % (usize::from(channels) * 2), 0);
            let seconds = data_len as f64 / f64::from(u32_at(bytes, 28));
            assert!((60.0..=90.0).contains(&seconds), "{}: {seconds} s", piece.id);
        }
        let total: u32 = PIECES.iter().map(|p| p.seconds).sum();
        assert!(total >= 180, "the catalog lasts {total} s");
    }

    #[test]
    fn audio_is_loud_enough_and_never_clips() {
        for (piece, bytes) in PIECES.iter().zip(rendered()) {
            let samples = bytes[44..]
                .chunks_exact(2)
                .map(|pair| i16::from_le_bytes([pair[0], pair[1]]));
            let peak = samples.map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!((26_000..=26_300).contains(&peak), "{}: peak {peak}", piece.id);
            // Music all the way through: every 5-second stretch before the fade has sound.
            let frame_bytes = usize::from(piece.channels) * 2;
            let window = 5 * piece.sample_rate as usize * frame_bytes;
            let audible = bytes[44..]
                .chunks(window)
                .take((piece.seconds as usize - 5) / 5)
                .all(|chunk| {
                    chunk
                        .chunks_exact(2)
                        .any(|pair| i16::from_le_bytes([pair[0], pair[1]]).unsigned_abs() > 2_000)
                });
            assert!(audible, "{} has a silent stretch", piece.id);
        }
    }

    #[test]
    fn rendering_is_deterministic_and_pinned() {
        for (piece, bytes) in PIECES.iter().zip(rendered()) {
            assert!(piece.render() == *bytes, "{} renders differently twice", piece.id);
            let digest = hex::encode(Sha256::digest(bytes));
            assert_eq!(
                digest, piece.sha256,
                "{}: the music changed; update the pinned sha256",
                piece.id
            );
        }
    }

    #[test]
    fn catalog_keeps_intact_tracks_and_repairs_damaged_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let long_ago = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for (piece, bytes) in PIECES.iter().zip(rendered()) {
            let path = dir.path().join(piece.file_name());
            fs::write(&path, bytes).expect("write track");
            let file = File::options().write(true).open(&path).expect("open track");
            file.set_modified(long_ago).expect("set mtime");
        }
        let damaged = dir.path().join(PIECES[1].file_name());
        fs::write(&damaged, b"damaged").expect("damage a track");

        let tracks = generate_catalog(dir.path()).expect("generation");
        assert_eq!(tracks.len(), PIECES.len());
        for (piece, track) in PIECES.iter().zip(&tracks) {
            let path = dir.path().join(&track.file);
            let bytes = fs::read(&path).expect("track file");
            assert_eq!(bytes.len() as u64, track.size);
            assert_eq!(hex::encode(Sha256::digest(&bytes)), track.sha256);
            assert_eq!(track.sha256, piece.sha256);
            assert_eq!(track.mime, "audio/wav");
            let mtime = fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");
            assert_eq!(mtime == long_ago, path != damaged, "{}", track.file);
        }
        let listed: Vec<DemoTrack> =
            serde_json::from_slice(&fs::read(dir.path().join(CATALOG_FILE)).expect("catalog")).expect("catalog JSON");
        assert_eq!(listed, tracks);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), PIECES.len() + 1, "stray files: {names:?}");
    }

    #[test]
    fn polynomial_sine_is_accurate() {
        for i in 0..10_000 {
            let cycles = f64::from(i) / 997.0 - 3.0;
            let error = (sine(cycles) - (cycles * std::f64::consts::TAU).sin()).abs();
            assert!(error < 1e-7, "sine({cycles}) off by {error}");
        }
        assert!((midi_to_hz(69) - 440.0).abs() < 1e-12);
        assert!((midi_to_hz(60) - 261.625_565_300_598_6).abs() < 1e-9);
        assert!((midi_to_hz(33) - 55.0).abs() < 1e-12);
    }
}
