/* A background job's page: ask the job's status every few seconds (data-poll), move the progress
   bar, and reload the page once the job is done or failed (the result is drawn by the server).
   Plain XMLHttpRequest, like login.js; without JavaScript the page reloads itself (<noscript>). */
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || box.getAttribute("data-final") === "1") { return; }
  var url = box.getAttribute("data-status");
  var every = Math.max(500, (parseFloat(box.getAttribute("data-poll")) || 2) * 1000);
  var bar = document.getElementById("job-bar");
  var progress = document.getElementById("job-progress");

  function answered(xhr) {
    var job = null;
    try { job = JSON.parse(xhr.responseText); } catch (e) { job = null; }
    if (xhr.status !== 200 || !job) {  // the server is away for a moment: ask again later
      setTimeout(ask, every * 3);
      return;
    }
    bar.style.width = job.percent + "%";
    bar.textContent = job.percent + "%";
    progress.setAttribute("aria-valuenow", job.percent);
    document.getElementById("job-status").textContent = job.status_text;
    document.getElementById("job-rows").textContent = job.rows_text;
    if (job.final) {
      window.location.reload();
      return;
    }
    setTimeout(ask, every);
  }

  function ask() {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url, true);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.onreadystatechange = function () { if (xhr.readyState === 4) { answered(xhr); } };
    xhr.send();
  }

  setTimeout(ask, every);
})();
