// What every page of the board shows things with: cells, buttons, notices, the live indicator
// and the confirmation dialog.

import { ApiError } from "./session.js";

const LIVE_TEXT = { offline: "Offline", connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };

export const $ = (selector) => document.querySelector(selector);

/** How long ago, in words: "just now", "5 min ago", "2 d ago". */
export function since(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 10) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function describe(error) {
  return error instanceof ApiError && error.code !== "ERROR" ? `${error.message} (${error.code})` : error.message;
}

export function notify(text) {
  const item = document.createElement("li");
  item.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = "Dismiss";
  close.setAttribute("aria-label", `Dismiss: ${text}`);
  close.addEventListener("click", () => item.remove());
  item.append(" ", close);
  $("#notices").prepend(item);
}

export function setLive(state) {
  const live = $("#live");
  live.dataset.state = state;
  live.textContent = LIVE_TEXT[state];
}

export function cell(row, label, text, className) {
  const td = row.insertCell();
  td.dataset.label = label;
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

export function button(text, label, action, className) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  if (className) b.className = className;
  b.addEventListener("click", action);
  return b;
}

/**
 * A modal question; resolves to null (cancelled) or {message, dueBack} (the fields asked for:
 * a message, a due-back time as an ISO string or null).
 */
export function ask(text, okText, withMessage, withDueBack = false) {
  const dialog = $("#ask");
  $("#ask-text").textContent = text;
  $("#ask-ok").textContent = okText;
  $("#ask-ok").classList.toggle("danger", !withMessage && !withDueBack);
  $("#ask-message-label").hidden = !withMessage;
  $("#ask-message").value = "";
  $("#ask-due-label").hidden = !withDueBack;
  $("#ask-due").value = "";
  dialog.returnValue = "";
  dialog.showModal();
  (withMessage ? $("#ask-message") : withDueBack ? $("#ask-due") : $("#ask-ok")).focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue !== "ok") return resolve(null);
        const due = $("#ask-due").value;
        resolve({ message: $("#ask-message").value.trim(), dueBack: due ? new Date(due).toISOString() : null });
      },
      { once: true },
    );
  });
}
