// The page's helpers: names for what Gradio leaves unnamed (the image editor's colour swatches, images with no alt
// text), the palette closed once a colour is chosen, and on a narrow screen a new result scrolled into view.
(() => {
  const colourNames = {
    "255,255,255": "white", "0,0,0": "black", "255,0,0": "red", "0,255,0": "green", "0,0,255": "blue",
    "255,255,0": "yellow", "255,0,255": "magenta", "0,255,255": "cyan", "128,128,128": "grey",
  };
  // a press as the pointer makes it (Gradio's editor listens to pointer events, not only to clicks)
  const press = (element) => {
    for (const type of ["pointerdown", "mousedown", "pointerup", "mouseup", "click"]) {
      element.dispatchEvent(new PointerEvent(type, { bubbles: true }));
    }
  };
  const nameOf = (element) =>
    (element.getAttribute("aria-label") || element.getAttribute("alt") || element.textContent || element.title || "").trim();
  const blockLabel = (element) => {
    const block = element.closest(".block");
    const label = block && block.querySelector("[data-testid=block-label], label span, .label-wrap span");
    return label ? label.textContent.trim() : "";
  };
  // the editor's brush colour as the page last chose it: the mask until a swatch is clicked (Gradio marks no swatch
  // while the brush paints see-through, so the page marks the chosen one itself)
  const MASK_LABEL = "Mask (see-through: marks the region to repaint)";
  let chosen = MASK_LABEL;
  const name = () => {
    document.querySelectorAll("button.color").forEach((swatch) => {
      if (swatch.classList.contains("colorpicker")) {
        if (!swatch.getAttribute("aria-label")) swatch.setAttribute("aria-label", "Custom colour");
        return;
      }
      const rgb = (swatch.style.backgroundColor.match(/\d+/g) || []).slice(0, 3).join(",");
      const seeThrough = parseFloat(swatch.style.opacity || "1") < 1;
      const label = seeThrough ? MASK_LABEL : `Colour ${colourNames[rgb] || rgb}`;
      if (swatch.getAttribute("aria-label") !== label) {
        swatch.setAttribute("aria-label", label);
        swatch.title = label;
        if (seeThrough) swatch.classList.add("glide-mask-swatch");
      }
      if (swatch.closest("#edit-editor")) {
        const isChosen = label === chosen;
        if (swatch.classList.contains("glide-chosen") !== isChosen) swatch.classList.toggle("glide-chosen", isChosen);
        if (swatch.getAttribute("aria-pressed") !== String(isChosen)) swatch.setAttribute("aria-pressed", String(isChosen));
      }
    });
    const counts = {};
    document.querySelectorAll("img").forEach((image) => {
      if (image.dataset.glideNamed === undefined && nameOf(image)) return;
      const base = blockLabel(image) || "Image";
      counts[base] = (counts[base] || 0) + 1;
      const label = counts[base] > 1 ? `${base} (${counts[base]})` : base;
      if (image.alt !== label) {
        image.alt = label;
        image.dataset.glideNamed = "";
      }
    });
  };
  // a swatch chosen closes the palette, which otherwise stays open over the canvas and takes the strokes
  document.addEventListener(
    "click",
    (event) => {
      if (!event.isTrusted) return; // the page's own choice of the mask swatch
      const swatch = event.target instanceof Element && event.target.closest("button.color:not(.colorpicker)");
      const editor = swatch && swatch.closest("#edit-editor");
      if (!editor) return;
      chosen = swatch.getAttribute("aria-label") || chosen;
      name();
      setTimeout(() => {
        // the Brush tool's button closes the palette and keeps painting with the chosen colour
        const brush = editor.querySelector("button[aria-label=Brush]");
        if (brush && editor.querySelector("menu.swatch")) press(brush);
      }, 0);
    },
    true,
  );
  // a narrow screen shows the settings below the results: a new result is scrolled into view
  const shownResults = new Set();
  const showNewResults = () => {
    const outputs = ".glide-outputs img[src*='/gradio_api/file=']";
    document.querySelectorAll(outputs).forEach((image) => {
      if (shownResults.has(image.src)) return;
      shownResults.add(image.src);
      if (window.innerWidth <= 720 && image.getClientRects().length) {
        image.scrollIntoView({ block: "nearest" });
      }
    });
  };
  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      name();
      showNewResults();
    });
  }).observe(document.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: ["src", "style", "class"] });
})();
