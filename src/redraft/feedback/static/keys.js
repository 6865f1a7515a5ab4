// Keyboard shortcuts: a button with data-key="a" (or "ctrl+Enter") is clicked by that key.
// Single keys are ignored while typing in a field, so corrections can contain any letter.
document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
  const combo = event.ctrlKey || event.metaKey;
  if ((typing && !combo) || event.altKey || event.repeat) return;
  const key = (combo ? "ctrl+" : "") + event.key;
  const button = document.querySelector(`form.label-form button[data-key="${CSS.escape(key)}"]`);
  if (!button) return;
  event.preventDefault();
  button.click();
});
