#!/usr/bin/env node
import { main } from '../dist/cli/listener.js';

main();
