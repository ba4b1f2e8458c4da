// The visit summary's Print button (a static file: the CSP allows no inline script).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-print-page]");
  if (button) {
    window.print();
  }
});
