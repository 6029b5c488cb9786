const express = require('express');
const app = express();
app.get('/', (req, res) => res.send('express here'));
module.exports = app;
