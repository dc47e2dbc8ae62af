#!/usr/bin/env node
import { main } from '../dist/cli/request.js';

main();
