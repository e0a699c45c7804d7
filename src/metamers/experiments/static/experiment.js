/* metamers recognition experiment: the participant's page (jsPsych 8).
 *
 * The server decides everything that matters (which trials, in which condition,
 * what is correct, who passes screening); this page shows trials, measures the
 * actual presentation timing with requestAnimationFrame, and saves each answer
 * before the next trial starts (retrying until the server acknowledges it).
 */
"use strict";

(function () {
  const { ParameterType } = jsPsychModule;
  const statusBox = () => document.getElementById("status");
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    })[c]);
  }

  function paragraphs(text) {
    return String(text).split(/\n\s*\n/).map((p) => `<p>${escapeHtml(p.trim())}</p>`).join("");
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  /* POST until the server answers: network errors and 5xx are retried with backoff;
   * 4xx are final (the request is wrong and retrying changes nothing). */
  async function post(path, body, onRetry) {
    for (let attempt = 0; ; attempt++) {
      let response = null;
      try {
        response = await fetch(path, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
          cache: "no-store",
        });
      } catch (error) {
        response = null;
      }
      if (response !== null && response.ok) {
        if (attempt > 0 && onRetry) onRetry(false);
        return response.json();
      }
      if (response !== null && response.status >= 400 && response.status < 500 &&
          response.status !== 408 && response.status !== 429) {
        let detail = response.statusText;
        try { detail = (await response.json()).detail; } catch (error) { /* keep statusText */ }
        throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
      }
      if (onRetry) onRetry(true);
      await sleep(Math.min(250 * 2 ** attempt, 4000));
    }
  }

  function recruitment() {
    const params = new URLSearchParams(window.location.search);
    const get = (name) => params.get(name) || null;
    if (get("PROLIFIC_PID")) {
      return { source: "prolific", participant_id: get("PROLIFIC_PID"),
               study_id: get("STUDY_ID"), session_id: get("SESSION_ID") };
    }
    if (get("workerId") || get("assignmentId")) {
      return { source: "mturk", participant_id: get("workerId"),
               assignment_id: get("assignmentId"), hit_id: get("hitId"),
               submit_to: get("turkSubmitTo") };
    }
    const stored = window.localStorage.getItem("metamers-participant");
    return { source: "anonymous", participant_id: stored };
  }

  /* Screen and refresh: the median interval of 60 animation frames. */
  function measureEnvironment() {
    return new Promise((resolve) => {
      const stamps = [];
      function tick(t) {
        stamps.push(t);
        if (stamps.length < 61) { requestAnimationFrame(tick); return; }
        const gaps = stamps.slice(1).map((v, i) => v - stamps[i]).sort((a, b) => a - b);
        const frame = gaps[Math.floor(gaps.length / 2)];
        resolve({
          refresh_hz: Math.round(10000 / frame) / 10,
          frame_ms: Math.round(frame * 1000) / 1000,
          screen_width: window.screen.width,
          screen_height: window.screen.height,
          window_width: window.innerWidth,
          window_height: window.innerHeight,
          device_pixel_ratio: window.devicePixelRatio,
          color_depth: window.screen.colorDepth,
          language: navigator.language || null,
          platform: navigator.platform || null,
        });
      }
      requestAnimationFrame(tick);
    });
  }

  /* Fixation, image, mask, each held for whole frames and timed by the frames' own clock. */
  class PresentPlugin {
    static info = {
      name: "metamers-present",
      version: "1.0.0",
      parameters: {
        image: { type: ParameterType.IMAGE, default: undefined },
        mask: { type: ParameterType.IMAGE, default: null },
        fixation_ms: { type: ParameterType.INT, default: 300 },
        image_ms: { type: ParameterType.INT, default: 300 },
        mask_ms: { type: ParameterType.INT, default: 300 },
        size: { type: ParameterType.INT, default: 256 },
      },
      data: {
        fixation_ms: { type: ParameterType.FLOAT },
        image_ms: { type: ParameterType.FLOAT },
        mask_ms: { type: ParameterType.FLOAT },
        image_frames: { type: ParameterType.INT },
      },
    };

    constructor(jsPsych) { this.jsPsych = jsPsych; }

    async trial(display, trial, onLoad) {
      const image = new Image();
      image.src = trial.image;
      const mask = new Image();
      if (trial.mask) mask.src = trial.mask;
      await Promise.all([image.decode(), trial.mask ? mask.decode() : Promise.resolve()]);
      for (const element of [image, mask]) {
        element.width = trial.size;
        element.height = trial.size;
        element.alt = "";
      }
      const stage = document.createElement("div");
      stage.className = "metamers-stage";
      stage.style.width = `${trial.size}px`;
      stage.style.height = `${trial.size}px`;
      stage.style.margin = "0 auto";
      const fixation = document.createElement("div");
      fixation.className = "metamers-fixation";
      fixation.textContent = "+";
      display.appendChild(stage);
      display.classList.add("metamers-nocursor");
      onLoad();
      const stages = [
        ["fixation", fixation, trial.fixation_ms],
        ["image", image, trial.image_ms],
        ["mask", trial.mask ? mask : document.createElement("div"), trial.mask_ms],
      ].filter(([, , ms]) => ms > 0);
      const onsets = {};
      const frames = {};
      let current = -1;
      let frame = 1000 / 60;
      let last = null;
      return new Promise((resolve) => {
        const step = (t) => {
          if (last !== null) frame = Math.min(frame, t - last) || frame;
          last = t;
          const due = current < 0 ||
            t - onsets[stages[current][0]] >= stages[current][2] - frame / 2;
          if (due) {
            current += 1;
            if (current === stages.length) {
              onsets.end = t;
              display.classList.remove("metamers-nocursor");
              stage.replaceChildren();
              const data = { image_frames: frames.image || 0 };
              const names = stages.map(([name]) => name);
              names.forEach((name, k) => {
                const next = k + 1 < names.length ? onsets[names[k + 1]] : onsets.end;
                data[`${name}_ms`] = Math.round((next - onsets[name]) * 100) / 100;
              });
              resolve(data);
              return;
            }
            const [name, element] = stages[current];
            stage.replaceChildren(element);
            onsets[name] = t;
          }
          const name = stages[current][0];
          frames[name] = (frames[name] || 0) + 1;
          requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
      });
    }
  }

  function buttonHtml(choice) {
    return `<button class="jspsych-btn" type="button">${escapeHtml(choice)}</button>`;
  }

  function textScreen(html, button) {
    return {
      type: jsPsychHtmlButtonResponse,
      stimulus: `<div class="metamers-text">${html}</div>`,
      choices: [button],
      button_html: buttonHtml,
    };
  }

  function showEnding(ending) {
    const box = document.querySelector(".jspsych-display-element") || document.body;
    const done = ending.status === "complete";
    const link = ending.redirect
      ? `<p><a id="metamers-return" class="jspsych-btn" href="${escapeHtml(ending.redirect)}">` +
        "Return to the recruitment site</a></p>"
      : "";
    box.innerHTML =
      `<div class="metamers-text" id="metamers-ending" data-status="${escapeHtml(ending.status)}">` +
      (done ? paragraphs(ending.debrief)
            : "<p>Thank you. This is the end of the study for you.</p>") +
      `<p>Your code:</p><p class="metamers-code" id="metamers-code">${escapeHtml(ending.code)}</p>` +
      `${link}</div>`;
    document.body.dataset.stage = "ending";
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  }

  async function main() {
    const recruit = recruitment();
    if (recruit.assignment_id === "ASSIGNMENT_ID_NOT_AVAILABLE") {
      statusBox().textContent = "Accept the HIT to begin the experiment.";
      return;
    }
    const environment = await measureEnvironment();
    let state;
    try {
      state = await post("/api/session", { ...recruit, environment });
    } catch (error) {
      statusBox().textContent = error.status === 409
        ? "You have already taken part in this study. Thank you!"
        : `The experiment cannot start: ${error.message}`;
      return;
    }
    if (recruit.source === "anonymous") {
      window.localStorage.setItem("metamers-participant", state.participant_id);
    }
    statusBox().remove();
    run(state, environment);
  }

  function run(state, environment) {
    const study = state.study;
    const jsPsych = initJsPsych({});
    const reply = { last: null };
    const timeline = [];
    const stimulusUrl = (id) => `/api/stimuli/${id}`;
    const audio = study.modality === "audio";
    let maskCounter = 0;
    let listenStart = 0;

    const setStage = (stage, index) => {
      document.body.dataset.stage = stage;
      if (index !== undefined) document.body.dataset.trial = String(index);
    };

    if (state.status === "started") {
      timeline.push({
        ...textScreen(`<h2>${escapeHtml(study.title)}</h2>${paragraphs(study.consent)}`, "I agree"),
        on_load: () => setStage("consent"),
      });
      timeline.push({
        type: jsPsychCallFunction,
        async: true,
        func: (done) => post("/api/consent", { token: state.token }).then(done),
      });
    }
    if (state.next_index === 0) {
      timeline.push({
        ...textScreen(paragraphs(study.instructions), "Start"),
        on_load: () => setStage("instructions"),
      });
    } else {
      timeline.push({
        ...textScreen("<p>Welcome back. You will continue where you left off.</p>", "Continue"),
        on_load: () => setStage("resume"),
      });
    }
    if (study.fullscreen) {
      timeline.push({
        type: jsPsychFullscreen,
        fullscreen_mode: true,
        on_load: () => setStage("fullscreen"),
      });
    }
    const files = state.trials.map((t) => stimulusUrl(t.stimulus));
    timeline.push({
      type: jsPsychPreload,
      images: audio ? [] : files.concat(study.masks.map(stimulusUrl)),
      audio: audio ? files.concat(study.calibration ? [stimulusUrl(study.calibration)] : []) : [],
      show_progress_bar: true,
      on_load: () => setStage("preload"),
    });
    if (audio && study.calibration && state.next_index === 0) {
      timeline.push({
        timeline: [{
          type: jsPsychAudioButtonResponse,
          stimulus: stimulusUrl(study.calibration),
          choices: ["Play again", "The level is comfortable"],
          button_html: buttonHtml,
          prompt: "<p>Put on headphones. Set your volume so that this noise is clearly " +
                  "audible and comfortable.</p>",
          on_load: () => setStage("calibration"),
        }],
        loop_function: (data) => data.values()[0].response === 0,
      });
    }

    const intros = {
      headphone: "<p>First, a check of your headphones. You will hear three tones; " +
                 "choose the one that is the <b>quietest</b>.</p>",
      practice: "<p>Practice trials: you will be told whether you were right.</p>",
      screening: "<p>A short test block, without feedback.</p>",
      main: "<p>The main part begins now. Answer as well as you can; guess when unsure.</p>",
    };
    let phase = state.trials.length ? null : "done";
    for (const trial of state.trials) {
      if (trial.phase !== phase) {
        phase = trial.phase;
        const intro = `intro-${phase}`;
        timeline.push({ ...textScreen(intros[phase], "Continue"), on_load: () => setStage(intro) });
      }
      if (trial.break_before) {
        timeline.push({
          ...textScreen("<p>Take a short break. Continue when you are ready.</p>", "Continue"),
          on_load: () => setStage("break"),
        });
      }
      timeline.push(...trialNodes(trial));
    }
    timeline.push({
      type: jsPsychCallFunction,
      async: true,
      func: (done) => post("/api/complete", { token: state.token }, saving).then(done),
    });

    function saving(retrying) {
      let box = document.getElementById("metamers-saving");
      if (!box) {
        box = document.createElement("div");
        box.id = "metamers-saving";
        box.className = "metamers-saving";
        document.body.appendChild(box);
      }
      box.textContent = retrying ? "Saving… (connection problem, retrying)" : "";
    }

    function responseNodes(trial) {
      const words = study.task === "words" && trial.phase !== "headphone";
      const choices = trial.phase === "headphone" ? ["1", "2", "3"] : study.choices;
      if (audio && !words) {
        return [{
          type: jsPsychAudioButtonResponse,
          stimulus: stimulusUrl(trial.stimulus),
          choices,
          button_html: buttonHtml,
          response_allowed_while_playing: false,
          prompt: trial.phase === "headphone" ? "<p>Which tone was the quietest?</p>" : "",
          on_load: () => setStage("respond", trial.index),
          on_finish: (data) => { data.response_text = choices[data.response]; },
        }];
      }
      if (audio) {
        const vocabulary = new Map(study.choices.map((w) => [w.toLowerCase(), w]));
        return [
          {
            type: jsPsychAudioButtonResponse,
            stimulus: stimulusUrl(trial.stimulus),
            choices: [],
            trial_ends_after_audio: true,
            response_allowed_while_playing: false,
            prompt: "<p>Listen.</p>",
            on_load: () => { setStage("listen", trial.index); listenStart = performance.now(); },
            on_finish: (data) => {
              data.audio_played_ms = Math.round((performance.now() - listenStart) * 100) / 100;
            },
          },
          {
            type: jsPsychSurveyHtmlForm,
            preamble: "<p>Which word did you hear?</p>",
            html: '<p><input name="word" id="metamers-word" list="metamers-vocabulary" ' +
                  'autocomplete="off" required autofocus></p><datalist id="metamers-vocabulary">' +
                  study.choices.map((w) => `<option value="${escapeHtml(w)}"></option>`).join("") +
                  "</datalist>",
            button_label: "Submit",
            on_load: () => {
              setStage("respond", trial.index);
              const input = document.getElementById("metamers-word");
              const check = () => input.setCustomValidity(
                vocabulary.has(input.value.trim().toLowerCase()) ? "" : "Type a word from the list.");
              input.addEventListener("input", check);
              check();
            },
            on_finish: (data) => {
              data.response_text = vocabulary.get(String(data.response.word).trim().toLowerCase());
            },
          },
        ];
      }
      const mask = study.masks.length ? stimulusUrl(study.masks[maskCounter++ % study.masks.length]) : null;
      return [
        {
          type: PresentPlugin,
          image: stimulusUrl(trial.stimulus),
          mask,
          size: study.image_px,
          fixation_ms: study.timing.fixation_ms,
          image_ms: study.timing.image_ms,
          mask_ms: study.timing.mask_ms,
          on_load: () => setStage("present", trial.index),
        },
        {
          type: jsPsychHtmlButtonResponse,
          stimulus: "<p>What did you see?</p>",
          choices,
          button_html: buttonHtml,
          button_layout: "grid",
          grid_columns: Math.min(4, choices.length),
          grid_rows: null,
          on_load: () => setStage("respond", trial.index),
          on_finish: (data) => { data.response_text = choices[data.response]; },
        },
      ];
    }

    function trialNodes(trial) {
      const nodes = responseNodes(trial);
      nodes.push({
        type: jsPsychCallFunction,
        async: true,
        func: (done) => {
          setStage("saving", trial.index);
          const recent = jsPsych.data.get().last(nodes.length).values();
          const answer = recent[recent.length - 1];
          const timing = { ...environment };
          for (const value of recent) {
            for (const key of ["fixation_ms", "image_ms", "mask_ms", "image_frames"]) {
              if (value[key] !== undefined) timing[key] = value[key];
            }
            if (value.audio_played_ms !== undefined) timing.audio_played_ms = value.audio_played_ms;
          }
          post("/api/trials", {
            token: state.token,
            index: trial.index,
            stimulus: trial.stimulus,
            response: String(answer.response_text),
            rt_ms: answer.rt === null ? null : Number(answer.rt),
            client_time: performance.now(),
            timing,
          }, saving).then((result) => {
            reply.last = result;
            if (result.status === "screened_out") {
              jsPsych.abortExperiment("");
            } else {
              done(result);
            }
          }).catch((error) => {
            jsPsych.abortExperiment(`<p>This session cannot continue: ${escapeHtml(error.message)}</p>`);
          });
        },
      });
      if (trial.phase === "practice" && study.feedback) {
        nodes.push({
          type: jsPsychHtmlKeyboardResponse,
          stimulus: () => {
            const fb = reply.last && reply.last.feedback;
            if (!fb) return "";
            return fb.correct
              ? '<p class="metamers-feedback" data-correct="1">Correct!</p>'
              : `<p class="metamers-feedback" data-correct="0">Not quite: it was <b>${escapeHtml(fb.answer)}</b>.</p>`;
          },
          choices: "NO_KEYS",
          trial_duration: 1000,
          on_load: () => setStage("feedback", trial.index),
        });
      }
      return nodes;
    }

    jsPsych.run(timeline).then(() => {
      const last = jsPsych.data.get().last(1).values()[0];
      if (reply.last && reply.last.status === "screened_out") {
        showEnding(reply.last.ending);
      } else if (last && last.value && last.value.code) {
        showEnding(last.value);
      }
    });
  }

  main();
})();
