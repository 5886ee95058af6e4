// The debugging dashboard in a real browser (SPEC §4.2, the observability issue): headless
// Debian Chromium, driven by playwright-core, opens `/TOKEN/` of a real `streamer serve` (demo
// backend), sees a cached resource and a download listed, plays a track with the page's own
// player until the audio element's `currentTime` passes one second while `/api/stats` counts the
// bytes served, and saves a screenshot (tests/artifacts/dashboard.png; also docs/dashboard.png,
// the README's picture, when UPDATE_README_SCREENSHOT=1). A wrong token gets 403 and no page.
//
// Run by tests/run.sh after the cargo tests: `npm ci --prefix tests/browser && node --test
// tests/browser/`. It needs target/debug/streamer (or STREAMER_BIN) and /usr/bin/chromium (or
// CHROMIUM_BIN); a missing one fails the test with the command that installs it. Every wait is
// bounded and on a condition; the server is started in its own process group and that group is
// killed at the end, by its id.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const STREAMER = process.env.STREAMER_BIN || path.join(ROOT, "target", "debug", "streamer");
const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const ARTIFACT = path.join(ROOT, "tests", "artifacts", "dashboard.png");
const README_SCREENSHOT = path.join(ROOT, "docs", "dashboard.png");

// This machine's network is closed: without the background-networking flags Chromium keeps
// trying to reach Google's hosts at start. Autoplay is allowed so the page's own `play()` runs.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--autoplay-policy=no-user-gesture-required",
];

/** Starts `streamer serve` over a fresh cache dir; resolves with its base URL (first stdout line). */
async function startServer(cacheDir) {
  assert.ok(existsSync(STREAMER), `${STREAMER} is missing: run 'cargo build -p tools' first`);
  const child = spawn(STREAMER, ["serve", "--cache-dir", cacheDir], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, killed by id at the end
  });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-8000);
  });
  const lines = readline.createInterface({ input: child.stdout });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL from streamer serve in 30 s; stderr:\n${stderr}`)), 30_000);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve(line.trim());
    });
    child.once("exit", (code) => reject(new Error(`streamer serve exited (${code}); stderr:\n${stderr}`)));
  });
  lines.on("line", () => {}); // keep draining stdout
  assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/[^/]+\/$/, "first stdout line is the base URL");
  return { child, base, stderr: () => stderr };
}

/** Kills the server's process group (by its id) and waits, bounded, for the exit. */
async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    return;
  }
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), 10_000);
  });
  const outcome = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (outcome === "timeout") {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

async function json(url, init) {
  const r = await fetch(url, init);
  assert.ok(r.ok, `${init?.method || "GET"} ${url}: HTTP ${r.status}`);
  return r.json();
}

/** Polls `cond` every 200 ms until it is true; fails naming `what` after `ms`. */
async function waitFor(what, ms, cond) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const served = (s) => s.bytes_from_cache + s.bytes_from_upstream;

test("the dashboard lists the cache and downloads and plays a track", { timeout: 180_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install it with 'apt-get install -y chromium'`);
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), "dashboard-test-"));
  const server = await startServer(cacheDir);
  let browser;
  try {
    const { base } = server;
    const tracks = await json(`${base}api/tracks`);
    assert.ok(tracks.length >= 3, `the demo catalog has three tracks, got ${JSON.stringify(tracks)}`);
    const [played, downloaded, partial] = tracks.map((t) => t.id);

    // A download (pinned, complete) and a partly cached resource.
    const download = await json(`${base}api/downloads`, {
      method: "POST",
      body: JSON.stringify({ track: downloaded }),
    });
    const part = await fetch(`${base}tracks/${partial}`, { headers: { Range: "bytes=0-65535" } });
    assert.equal(part.status, 206);
    assert.equal((await part.arrayBuffer()).byteLength, 65536);
    await waitFor(`download ${download.id} to complete`, 30_000, async () => {
      const d = await json(`${base}api/downloads/${download.id}`);
      assert.notEqual(d.state, "failed", `the download failed: ${d.error}`);
      return d.state === "completed";
    });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));

    // A wrong token: 403, and none of the page.
    const wrong = base.replace(/\/[^/]+\/$/, "/WRONGTOKEN/");
    const refused = await page.goto(wrong);
    assert.equal(refused.status(), 403, "a wrong token must get 403");
    const refusedHtml = await page.content();
    assert.ok(!refusedHtml.includes('id="audio"') && !refusedHtml.includes("Downloads"), refusedHtml);

    const shown = await page.goto(base);
    assert.equal(shown.status(), 200);
    await page.waitForFunction(
      ([partialId, downloadedId]) => {
        const resources = document.getElementById("resources")?.textContent || "";
        const downloads = document.getElementById("downloads")?.textContent || "";
        return resources.includes(partialId) && downloads.includes(`track ${downloadedId}`) && downloads.includes("completed");
      },
      [partial, downloaded],
      { timeout: 15_000, polling: 200 },
    );

    // Play a track through the page's player: choosing it starts playback.
    const before = served(await json(`${base}api/stats`));
    await page.waitForSelector(`#track option[value="${played}"]`, { state: "attached", timeout: 15_000 });
    await page.selectOption("#track", played);
    await page.waitForFunction(() => document.getElementById("audio").currentTime > 1, null, {
      timeout: 30_000,
      polling: 200,
    });
    const audio = await page.evaluate(() => {
      const a = document.getElementById("audio");
      return { paused: a.paused, error: a.error && a.error.code, src: a.getAttribute("src") };
    });
    assert.equal(audio.error, null, "the audio element reports no error");
    assert.equal(audio.src, `tracks/${played}`, "the player uses the relative track route");
    await waitFor("the server's stats to count the bytes played", 15_000, async () => {
      return served(await json(`${base}api/stats`)) > before;
    });
    // The page shows the played track in the cache list at its next refresh.
    await page.waitForFunction((id) => (document.getElementById("resources")?.textContent || "").includes(id), played, {
      timeout: 15_000,
      polling: 200,
    });
    assert.deepEqual(errors, [], "the page raised no script errors");

    mkdirSync(path.dirname(ARTIFACT), { recursive: true });
    await page.screenshot({ path: ARTIFACT, fullPage: true });
    if (process.env.UPDATE_README_SCREENSHOT === "1") {
      mkdirSync(path.dirname(README_SCREENSHOT), { recursive: true });
      copyFileSync(ARTIFACT, README_SCREENSHOT);
    }
  } catch (e) {
    e.message += `\n---- streamer serve stderr (tail) ----\n${server.stderr()}`;
    throw e;
  } finally {
    if (browser) await browser.close();
    await stopServer(server.child);
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
