// Renders pages of the built site (site/) in a headless Chromium and saves a PNG of each, so a
// change to the site can be checked by eye. Arguments: PAGE=OUT.png ...; run by ./run beside it.
import chromium from "@sparticuz/chromium";
import puppeteer from "puppeteer-core";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
const root = path.resolve(process.env.SITE_DIR || "site");
const server = http.createServer((req, res) => {
  let p = path.join(root, decodeURIComponent(req.url.split("?")[0]));
  if (p.endsWith("/")) p += "index.html";
  fs.readFile(p, (err, data) => {
    if (err) { res.writeHead(404); res.end(); return; }
    const types = {".html":"text/html",".css":"text/css",".js":"application/javascript",".png":"image/png",".svg":"image/svg+xml",".json":"application/json"};
    res.writeHead(200, {"Content-Type": types[path.extname(p)] || "application/octet-stream"});
    res.end(data);
  });
}).listen(8123);
const browser = await puppeteer.launch({ args: chromium.args, executablePath: await chromium.executablePath(), headless: true, defaultViewport: { width: 1280, height: 900 } });
const page = await browser.newPage();
for (const [url, out] of process.argv.slice(2).map(a => a.split("="))) {
  await page.goto("http://localhost:8123/" + url, { waitUntil: "networkidle0" });
  await page.screenshot({ path: out, fullPage: false });
  console.log("wrote", out, await page.title());
}
await browser.close(); server.close();
