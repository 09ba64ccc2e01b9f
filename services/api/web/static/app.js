// baocao web: live updates of a totals page (server-sent events) and file upload with progress.
// Plain JavaScript, no library; every page works without it except those two enhancements.

// every state-changing request carries the session's CSRF token (the page's meta csrf-token)
const csrfMeta = document.querySelector('meta[name="csrf-token"]');
const csrfHeaders = csrfMeta ? { "X-CSRF-Token": csrfMeta.content } : {};

const live = document.getElementById("live");
if (live && live.dataset.live === "on" && "EventSource" in window) {
  const status = document.getElementById("live-status");
  const events = new EventSource(live.dataset.events);
  let pending = null;
  events.addEventListener("open", () => {
    live.dataset.connected = "yes";
    status.textContent = "Đang nhận cập nhật trực tiếp.";
  });
  events.addEventListener("error", () => {
    live.dataset.connected = "no";
    status.textContent = "Mất kết nối cập nhật trực tiếp; đang thử lại…";
  });
  events.addEventListener("end", (event) => {
    // the session ended (logout, revocation, expiry): stop, do not reconnect
    events.close();
    live.dataset.connected = "ended";
    let reason = "Phiên đăng nhập đã kết thúc.";
    try {
      reason = JSON.parse(event.data).reason || reason;
    } catch {}
    status.textContent = reason + " Hãy đăng nhập lại để tiếp tục nhận cập nhật.";
  });
  events.addEventListener("total", () => {
    // many changes arrive together: redraw once, shortly after the last one
    clearTimeout(pending);
    pending = setTimeout(refresh, 300);
  });
  async function refresh() {
    const answer = await fetch(location.href, { headers: { "X-Partial": "live" }, credentials: "same-origin" });
    if (!answer.ok) return;
    live.innerHTML = await answer.text();
    live.dataset.updates = String(Number(live.dataset.updates || 0) + 1);
    status.textContent = "Đã cập nhật lúc " + new Date().toLocaleTimeString("vi-VN") + ".";
  }
}

const uploadForm = document.getElementById("upload-form");
if (uploadForm) {
  const kind = document.getElementById("kind");
  kind.addEventListener("change", () => {
    document.getElementById("template-xlsx").href = `/web/templates/${kind.value}.xlsx`;
    document.getElementById("template-csv").href = `/web/templates/${kind.value}.csv`;
  });
  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = document.getElementById("upload-progress");
    const bar = document.getElementById("progress");
    const status = document.getElementById("upload-status");
    const resultsBox = document.getElementById("results-box");
    const tbody = document.querySelector("#results tbody");
    tbody.replaceChildren();
    box.hidden = false;
    bar.value = 0;
    uploadForm.dataset.state = "checking";
    status.textContent = "Đang đọc và kiểm tra tệp…";
    const checked = await fetch("/web/upload/check", {
      method: "POST",
      headers: csrfHeaders,
      body: new FormData(uploadForm),
    });
    const body = await checked.json();
    if (!checked.ok) {
      status.textContent = "Không gửi được: " + (body.detail || checked.status);
      uploadForm.dataset.state = "failed";
      return;
    }
    const rows = body.rows;
    const cells = new Map();
    resultsBox.hidden = false;
    for (const row of rows) {
      const tr = document.createElement("tr");
      tr.dataset.row = row.row;
      const result = document.createElement("td");
      const detail = document.createElement("td");
      for (const text of [String(row.row), row.unit]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      tr.append(result, detail);
      if (row.report) {
        result.textContent = "Đang chờ gửi";
        cells.set(row.row, { result, detail, tr });
      } else {
        tr.dataset.status = "invalid";
        result.textContent = "Không hợp lệ, chưa gửi";
        detail.textContent = Object.entries(row.errors).map(([k, v]) => (k ? `${k}: ${v}` : v)).join("; ");
      }
      tbody.append(tr);
    }
    const valid = rows.filter((r) => r.report);
    const size = 50;
    let done = 0;
    let accepted = 0;
    uploadForm.dataset.state = "sending";
    for (let start = 0; start < valid.length; start += size) {
      const chunk = valid.slice(start, start + size);
      status.textContent = `Đang gửi ${done + chunk.length}/${valid.length} báo cáo…`;
      const sent = await fetch("/web/upload/send", {
        method: "POST",
        headers: { "Content-Type": "application/json", ...csrfHeaders },
        body: JSON.stringify({ reports: chunk.map((r) => r.report) }),
      });
      const answer = await sent.json();
      chunk.forEach((row, i) => {
        const r = (answer.results || [])[i];
        const cell = cells.get(row.row);
        const statusName = r ? r.status : "unavailable";
        cell.tr.dataset.status = statusName;
        cell.result.textContent = r ? r.text : answer.detail || "Không gửi được";
        cell.detail.textContent = r ? r.message : "";
        if (statusName === "accepted" || statusName === "duplicate") accepted += 1;
      });
      done += chunk.length;
      bar.value = valid.length ? Math.round((100 * done) / valid.length) : 100;
    }
    bar.value = 100;
    const invalid = rows.length - valid.length;
    status.textContent = `Xong: ${accepted}/${rows.length} dòng được tiếp nhận, ${rows.length - accepted} dòng lỗi${invalid ? ` (${invalid} dòng không hợp lệ, chưa gửi)` : ""}.`;
    uploadForm.dataset.state = "done";
  });
}

const summary = document.getElementById("error-summary");
if (summary) summary.focus();
