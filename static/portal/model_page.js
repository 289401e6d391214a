// The model page: copy buttons for the snippets, and a CSV too big to predict inline handed to a batch job.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = "Copied";
      window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });
  // Choosing a file over the inline limit: say so before it is sent, and move it to the job form.
  document.addEventListener("change", function (event) {
    var input = event.target;
    var offer = document.getElementById("job-offer");
    if (!offer || input.form !== document.getElementById("csv-form") || input.type !== "file") return;
    var file = input.files && input.files[0];
    var tooBig = !!file && file.size > Number(offer.getAttribute("data-max-bytes"));
    document.getElementById("csv-button").disabled = tooBig;
    offer.classList.toggle("alert", tooBig);
    offer.classList.toggle("alert-warning", tooBig);
    if (!tooBig) return;
    document.getElementById("job-offer-file").files = input.files;
    document.getElementById("job-offer-text").textContent =
      file.name + " is over the limit for an inline prediction: run it as a batch job instead.";
  });
})();
