// Asks before submitting a form marked data-confirm="question".  A listener in a static file
// rather than onsubmit="..." attributes: the Content-Security-Policy forbids inline script.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
