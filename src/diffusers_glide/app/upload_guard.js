() => {
  // Refuse files over the server's upload limit in the page, with a message: Gradio's server answers them
  // with HTTP 413, which its upload components otherwise drop without a word.
  const limit = __LIMIT_BYTES__;
  const limitText = "__LIMIT_TEXT__";
  const tooLarge = (files) => Array.from(files || []).find((file) => file.size > limit);
  const show = (file) => {
    let box = document.getElementById("glide-upload-error");
    if (!box) {
      box = document.createElement("div");
      box.id = "glide-upload-error";
      box.setAttribute("role", "alert");
      box.style.cssText =
        "position:fixed;top:12px;left:50%;transform:translateX(-50%);z-index:10000;max-width:90%;" +
        "background:#fee2e2;color:#991b1b;border:1px solid #f87171;border-radius:8px;padding:10px 16px;" +
        "font:14px sans-serif;cursor:pointer";
      box.title = "Close";
      box.onclick = () => box.remove();
      document.body.appendChild(box);
    }
    const size = (file.size / 1e6).toFixed(1);
    box.textContent = `${file.name} is ${size} MB: uploads are limited to ${limitText}. Choose a smaller image.`;
  };
  document.addEventListener(
    "change",
    (event) => {
      const input = event.target;
      const file = input instanceof HTMLInputElement && input.type === "file" && tooLarge(input.files);
      if (file) {
        event.stopImmediatePropagation();
        input.value = "";
        show(file);
      }
    },
    true,
  );
  document.addEventListener(
    "drop",
    (event) => {
      const file = event.dataTransfer && tooLarge(event.dataTransfer.files);
      if (file) {
        event.preventDefault();
        event.stopImmediatePropagation();
        show(file);
      }
    },
    true,
  );
}
