// The classic mistake: an Express module that starts its own HTTP server when it is loaded, and exports the app.
// Port 0 here, so that tests can run side by side; app.listen(3000) is the usual form.
const express = require('express');
const app = express();
app.get('/', (req, res) => res.send('express here'));
app.listen(0, '127.0.0.1');
module.exports = app;
