// The reader/writer lives in src/core (the sEH proxy of src/envs reads its weights with it).
export * from '../core/safetensors.js';
